-- The schema of DESIGN.md: tables, FTS5 index kept in sync by triggers, first views.
CREATE TABLE feeds (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    full_text INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    etag TEXT,
    last_modified TEXT,
    last_fetched_at TEXT,
    last_success_at TEXT,
    last_status TEXT,
    last_error TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_fetch_after TEXT
);
CREATE TABLE articles (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    guid TEXT,
    feed_id INTEGER REFERENCES feeds(id),
    title TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL DEFAULT '',
    author TEXT,
    published_at TEXT,
    week TEXT,
    fetched_at TEXT NOT NULL,
    updated_at TEXT,
    content_hash TEXT NOT NULL,
    identity_hash TEXT,
    relevance REAL,
    is_relevant INTEGER,
    story_id INTEGER REFERENCES stories(id),
    extracted_at TEXT,
    extractor_version TEXT
);
CREATE INDEX articles_published ON articles(published_at);
CREATE INDEX articles_week ON articles(week);
CREATE INDEX articles_guid ON articles(feed_id, guid);
CREATE INDEX articles_identity ON articles(identity_hash);
CREATE INDEX articles_extractor ON articles(extractor_version);
CREATE TABLE article_sources (
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
    guid TEXT,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (article_id, feed_id)
);
CREATE TABLE entities (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('company', 'product')),
    name TEXT NOT NULL,
    company_id TEXT,
    family TEXT
);
CREATE TABLE mentions (
    id INTEGER PRIMARY KEY,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    entity_id TEXT NOT NULL REFERENCES entities(id),
    surface TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    sentence TEXT NOT NULL
);
CREATE INDEX mentions_article ON mentions(article_id);
CREATE INDEX mentions_entity ON mentions(entity_id);
CREATE TABLE candidates (
    surface TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    n_articles INTEGER NOT NULL DEFAULT 0,
    example_article_id INTEGER REFERENCES articles(id) ON DELETE SET NULL,
    example_sentence TEXT
);
CREATE TABLE candidate_articles (
    surface TEXT NOT NULL REFERENCES candidates(surface) ON DELETE CASCADE,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    PRIMARY KEY (surface, article_id)
);
CREATE TABLE stories (
    id INTEGER PRIMARY KEY,
    week TEXT,
    title TEXT NOT NULL,
    first_seen TEXT,
    last_seen TEXT,
    n_articles INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE briefings (
    week TEXT PRIMARY KEY,
    generated_at TEXT NOT NULL,
    headline TEXT NOT NULL,
    html TEXT NOT NULL,
    text TEXT NOT NULL,
    stats TEXT NOT NULL
);
CREATE TABLE deliveries (
    week TEXT NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT,
    message_id TEXT,
    error TEXT,
    next_attempt_after TEXT,
    PRIMARY KEY (week, recipient)
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    stats TEXT,
    error TEXT
);
CREATE VIRTUAL TABLE articles_fts USING fts5(
    title, summary, content, content='articles', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER articles_ai AFTER INSERT ON articles BEGIN
    INSERT INTO articles_fts(rowid, title, summary, content)
    VALUES (new.id, new.title, new.summary, new.content);
END;
CREATE TRIGGER articles_ad AFTER DELETE ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, summary, content)
    VALUES ('delete', old.id, old.title, old.summary, old.content);
END;
CREATE TRIGGER articles_au AFTER UPDATE OF title, summary, content ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, summary, content)
    VALUES ('delete', old.id, old.title, old.summary, old.content);
    INSERT INTO articles_fts(rowid, title, summary, content)
    VALUES (new.id, new.title, new.summary, new.content);
END;
CREATE VIEW weekly_mentions AS
    SELECT a.week AS week, e.name AS entity, e.kind AS kind,
           c.name AS company,
           COUNT(DISTINCT m.article_id) AS n_articles, COUNT(*) AS n_mentions
    FROM mentions m
    JOIN articles a ON a.id = m.article_id
    JOIN entities e ON e.id = m.entity_id
    LEFT JOIN entities c ON c.id = e.company_id
    WHERE a.is_relevant = 1
    GROUP BY a.week, e.id;
CREATE VIEW product_timeline AS
    SELECT e.name AS product, c.name AS company,
           MIN(a.published_at) AS first_seen, MAX(a.published_at) AS last_seen,
           COUNT(DISTINCT a.week) AS weeks, COUNT(DISTINCT a.id) AS n_articles
    FROM mentions m
    JOIN articles a ON a.id = m.article_id
    JOIN entities e ON e.id = m.entity_id AND e.kind = 'product'
    LEFT JOIN entities c ON c.id = e.company_id
    WHERE a.is_relevant = 1
    GROUP BY e.id;
