-- The briefing looks up the names first seen in a week ("New names on the radar").
CREATE INDEX IF NOT EXISTS candidates_first_seen ON candidates(first_seen);
