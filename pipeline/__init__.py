"""chipwatch: feeds about the AI-chip race -> spaCy -> SQLite -> a weekly briefing."""

__version__ = "0.1.0"
