-- Moderation, notifications and quality-of-work-life check-ins.
-- Times are microseconds since the epoch; kinds and actions are the numbers of
-- eva.community.v1's enums.

-- One report per user and post.
CREATE TABLE reports (
    content_kind INTEGER NOT NULL,
    content_id TEXT NOT NULL,
    reporter_user_id TEXT NOT NULL,
    space_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (content_kind, content_id, reporter_user_id)
);

-- Who did what to which post, why and when. `space_id` is '' for a solution.
CREATE TABLE moderation_log (
    entry_id TEXT PRIMARY KEY,
    space_id TEXT NOT NULL,
    content_kind INTEGER NOT NULL,
    content_id TEXT NOT NULL,
    action INTEGER NOT NULL,
    actor_user_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    occurred_at_us BIGINT NOT NULL
);
CREATE INDEX moderation_log_space ON moderation_log (space_id, entry_id);

-- A user's notifications. `frequency` is the preference when it was created:
-- only IMMEDIATELY ones are pushed live. One per user, kind and post.
CREATE TABLE notifications (
    notification_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    content_kind INTEGER NOT NULL,
    content_id TEXT NOT NULL,
    question_id TEXT NOT NULL,
    frequency INTEGER NOT NULL,
    created_at_us BIGINT NOT NULL,
    read_at_us BIGINT,
    UNIQUE (user_id, kind, content_kind, content_id)
);
CREATE INDEX notifications_user ON notifications (user_id, notification_id);

-- Per user and kind: how often (absent = immediately).
CREATE TABLE notification_preferences (
    user_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    frequency INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- Référentiel domains whose new solution sheets the user follows.
CREATE TABLE notification_domains (
    user_id TEXT NOT NULL,
    domain_id TEXT NOT NULL,
    PRIMARY KEY (user_id, domain_id)
);
CREATE INDEX notification_domains_domain ON notification_domains (domain_id);

-- Only "this user answered this month", to allow one check-in per month. The
-- answers themselves are never stored with the user: they leave in an event.
CREATE TABLE checkin_months (
    user_id TEXT NOT NULL,
    month TEXT NOT NULL,
    PRIMARY KEY (user_id, month)
);
