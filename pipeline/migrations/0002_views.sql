-- Views for the questions analysts ask most (README "Querying", db/metadata.json).
-- Counting views look at relevant articles only (is_relevant = 1): "Amazon" in a piece about
-- the rainforest or Prime Day is not coverage of Amazon's chips.
DROP VIEW IF EXISTS weekly_mentions;
CREATE VIEW weekly_mentions AS
    SELECT a.week AS week, e.name AS entity, e.kind AS kind,
           COALESCE(c.name, CASE WHEN e.kind = 'company' THEN e.name END) AS company,
           COUNT(DISTINCT m.article_id) AS n_articles, COUNT(*) AS n_mentions
    FROM mentions m
    JOIN articles a ON a.id = m.article_id
    JOIN entities e ON e.id = m.entity_id
    LEFT JOIN entities c ON c.id = e.company_id
    WHERE a.is_relevant = 1
    GROUP BY a.week, e.id;
DROP VIEW IF EXISTS product_timeline;
CREATE VIEW product_timeline AS
    SELECT e.name AS product, c.name AS company,
           MIN(COALESCE(a.published_at, a.fetched_at)) AS first_seen,
           MAX(COALESCE(a.published_at, a.fetched_at)) AS last_seen,
           COUNT(DISTINCT a.week) AS weeks, COUNT(DISTINCT a.id) AS n_articles
    FROM mentions m
    JOIN articles a ON a.id = m.article_id
    JOIN entities e ON e.id = m.entity_id AND e.kind = 'product'
    LEFT JOIN entities c ON c.id = e.company_id
    WHERE a.is_relevant = 1
    GROUP BY e.id;
-- Two companies named in the same article; each pair once, in alphabetical order.
CREATE VIEW company_pairs AS
    WITH named AS (
        SELECT DISTINCT a.week AS week, m.article_id AS article_id, e.name AS company
        FROM mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN entities e ON e.id = m.entity_id AND e.kind = 'company'
        WHERE a.is_relevant = 1
    )
    SELECT x.week AS week, x.company AS company_a, y.company AS company_b,
           COUNT(*) AS n_articles
    FROM named x
    JOIN named y ON y.article_id = x.article_id AND x.company < y.company
    GROUP BY x.week, x.company, y.company;
-- One row per article (relevant or not): its feed, story, and the names it mentions as JSON arrays.
CREATE VIEW article_entities AS
    SELECT a.id AS article_id, a.week AS week, a.published_at AS published_at, f.name AS feed,
           a.title AS title, a.url AS url, a.author AS author, a.summary AS summary,
           a.relevance AS relevance, a.is_relevant AS is_relevant,
           a.story_id AS story_id, s.title AS story,
           (SELECT json_group_array(name) FROM (
                SELECT DISTINCT e.name AS name FROM mentions m JOIN entities e ON e.id = m.entity_id
                WHERE m.article_id = a.id AND e.kind = 'company' ORDER BY e.name)) AS companies,
           (SELECT json_group_array(name) FROM (
                SELECT DISTINCT e.name AS name FROM mentions m JOIN entities e ON e.id = m.entity_id
                WHERE m.article_id = a.id AND e.kind = 'product' ORDER BY e.name)) AS products
    FROM articles a
    LEFT JOIN feeds f ON f.id = a.feed_id
    LEFT JOIN stories s ON s.id = a.story_id;
-- Each feed's fetch state and what it has brought in.
CREATE VIEW feed_health AS
    SELECT f.id AS feed_id, f.name AS name, f.url AS url,
           CASE WHEN NOT f.active THEN 'gone'
                WHEN f.last_fetched_at IS NULL THEN 'new'
                WHEN f.consecutive_failures > 0 THEN 'failing'
                ELSE 'ok' END AS state,
           f.consecutive_failures AS consecutive_failures, f.last_status AS last_status,
           f.last_error AS last_error, f.last_fetched_at AS last_fetched_at,
           f.last_success_at AS last_success_at, f.next_fetch_after AS next_fetch_after,
           COUNT(a.id) AS n_articles, COALESCE(SUM(a.is_relevant = 1), 0) AS n_relevant,
           MAX(a.published_at) AS last_published_at
    FROM feeds f
    LEFT JOIN article_sources s ON s.feed_id = f.id
    LEFT JOIN articles a ON a.id = s.article_id
    GROUP BY f.id;
