//! What the statistics service reads, feed by feed: written once, here. Statistics
//! subscribes to exactly these subjects, and the hub copies exactly these subjects from
//! every box, nothing else of theirs, into streams of its own (`EVA_FED_<…>`) that the
//! hub's statistics reads a second time.
//!
//! The copies are separate streams, without subjects of their own, so that the hub's
//! identity, diagnostics, referrals and community services, which read `EVA_IDENTITY`
//! and the like, never see a box's events.
//!
//! None of these events names anyone: ids (UUIDv7), statistics pseudonyms, territory
//! codes, levels, dates. `eva.referrals.referral.sent` and `.…` status changes also
//! carry the referral's details sealed with the person's key, which stays in the box's
//! identity service (and is destroyed when the person is erased): the hub holds those
//! blobs unreadable, as `EVA_FEDERATION` already does for partners.

use crate::bus::{StreamSpec, streams};

/// One statistics feed: the subjects it reads of a stream.
#[derive(Debug, Clone, Copy)]
pub struct StatisticsFeed {
    /// Its durable consumer is `statistics-<purpose>`, and `statistics-<purpose>-fed` on
    /// the hub's copy.
    pub purpose: &'static str,
    /// The stream every server's own services write.
    pub stream: StreamSpec,
    /// The hub's copy of the boxes' `stream`, restricted to `subjects`.
    pub federated: StreamSpec,
    pub subjects: &'static [&'static str],
}

/// A hub's copy of the boxes' `name` stream: no subjects, it only holds what it sources
/// (see [`crate::bus::Bus::ensure_stream`]).
const fn copy(name: &'static str, description: &'static str) -> StreamSpec {
    StreamSpec {
        name,
        subjects: &[],
        description,
    }
}

pub const FED_IDENTITY: StreamSpec = copy(
    "EVA_FED_IDENTITY",
    "the boxes' structure, accompaniment and person events statistics reads",
);
pub const FED_DIAGNOSTICS: StreamSpec = copy(
    "EVA_FED_DIAGNOSTICS",
    "the boxes' shared diagnostics, pseudonymous, for statistics",
);
pub const FED_REFERRALS: StreamSpec = copy(
    "EVA_FED_REFERRALS",
    "the boxes' referral events, for statistics",
);
pub const FED_COMMUNITY: StreamSpec = copy(
    "EVA_FED_COMMUNITY",
    "the boxes' community questions, answers and check-ins, for statistics",
);

pub const STRUCTURES: StatisticsFeed = StatisticsFeed {
    purpose: "structures",
    stream: streams::IDENTITY,
    federated: FED_IDENTITY,
    subjects: &["eva.identity.structure.>"],
};
pub const PEOPLE: StatisticsFeed = StatisticsFeed {
    purpose: "people",
    stream: streams::IDENTITY,
    federated: FED_IDENTITY,
    subjects: &["eva.identity.accompaniment.>", "eva.identity.person.>"],
};
pub const DIAGNOSTICS: StatisticsFeed = StatisticsFeed {
    purpose: "diagnostics",
    stream: streams::DIAGNOSTICS,
    federated: FED_DIAGNOSTICS,
    subjects: &[
        "eva.diagnostics.diagnostic.shared",
        "eva.diagnostics.diagnostic.superseded",
        "eva.diagnostics.pseudonym.exclusion_changed",
    ],
};
pub const REFERRALS: StatisticsFeed = StatisticsFeed {
    purpose: "referrals",
    stream: streams::REFERRALS,
    federated: FED_REFERRALS,
    subjects: &["eva.referrals.referral.>"],
};
pub const COMMUNITY: StatisticsFeed = StatisticsFeed {
    purpose: "community",
    stream: streams::COMMUNITY,
    federated: FED_COMMUNITY,
    subjects: &[
        "eva.community.question.asked",
        "eva.community.answer.posted",
        "eva.community.checkin.submitted",
    ],
};

/// Every statistics feed.
pub const STATISTICS_FEEDS: &[StatisticsFeed] =
    &[STRUCTURES, PEOPLE, DIAGNOSTICS, REFERRALS, COMMUNITY];

/// The hub's copies, each with the box stream it copies and the subjects every feed
/// reads of it, in [`STATISTICS_FEEDS`] order.
pub fn copies() -> Vec<(StreamSpec, StreamSpec, Vec<&'static str>)> {
    let mut out: Vec<(StreamSpec, StreamSpec, Vec<&'static str>)> = Vec::new();
    for feed in STATISTICS_FEEDS {
        match out
            .iter_mut()
            .find(|(copy, ..)| copy.name == feed.federated.name)
        {
            Some((.., subjects)) => subjects.extend_from_slice(feed.subjects),
            None => out.push((feed.federated, feed.stream, feed.subjects.to_vec())),
        }
    }
    out
}
