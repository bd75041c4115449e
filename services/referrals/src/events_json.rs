//! Protobuf's canonical JSON mapping of the referral events, for the partners
//! that chose JSON (on NATS and on their webhooks).
//!
//! Written by hand over `serde_json` for the four messages of
//! `eva/referrals/v1/events.proto`, following the proto3 JSON rules:
//! lowerCamelCase field names, enums by their names
//! (`REFERRAL_STATUS_ACCEPTEE`, an unknown number as the number),
//! `google.protobuf.Timestamp` as an RFC 3339 string in UTC (`Z`, 0, 3, 6 or
//! 9 fractional digits), `bytes` as standard base64 with padding, repeated
//! fields as arrays, and fields holding their default value (empty string,
//! 0, empty list, unset message) left out. A set message field with nothing
//! inside is written `{}`.
//!
//! Which message the body holds is decided by the event type:
//! `eva.referrals.referral.sent` → `ReferralSent`,
//! `eva.referrals.referral.reminded` → `ReferralReminded`,
//! `eva.referrals.message.posted` → `ReferralMessagePosted`, any other
//! `eva.referrals.referral.*` → `ReferralStatusChanged`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eva_proto::identity::v1::SealedPayload;
use eva_proto::referrals::v1::{
    ReferralMessagePosted, ReferralReminded, ReferralSent, ReferralStatus, ReferralStatusChanged,
    RefusalReason, SealedDomain,
};
use prost::Message;
use serde_json::{Map, Value};

/// The JSON form of an event's protobuf body.
pub fn to_json(event_type: &str, proto: &[u8]) -> Result<Vec<u8>, String> {
    let value = match event_type {
        "eva.referrals.referral.sent" => sent(&decode::<ReferralSent>(event_type, proto)?)?,
        "eva.referrals.referral.reminded" => {
            reminded(&decode::<ReferralReminded>(event_type, proto)?)?
        }
        "eva.referrals.message.posted" => {
            message_posted(&decode::<ReferralMessagePosted>(event_type, proto)?)?
        }
        t if t
            .strip_prefix("eva.referrals.referral.")
            .is_some_and(|rest| !rest.is_empty()) =>
        {
            status_changed(&decode::<ReferralStatusChanged>(event_type, proto)?)?
        }
        other => return Err(format!("unknown event type `{other}`")),
    };
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

fn decode<M: Message + Default>(event_type: &str, proto: &[u8]) -> Result<M, String> {
    M::decode(proto).map_err(|e| format!("{event_type}: undecodable body: {e}"))
}

/// An object under construction; default values are skipped.
#[derive(Default)]
struct Object(Map<String, Value>);

impl Object {
    fn string(mut self, name: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.insert(name.into(), Value::String(v.to_owned()));
        }
        self
    }

    fn strings(mut self, name: &str, v: &[String]) -> Self {
        if !v.is_empty() {
            self.0.insert(
                name.into(),
                Value::Array(v.iter().cloned().map(Value::String).collect()),
            );
        }
        self
    }

    fn bytes(mut self, name: &str, v: &[u8]) -> Self {
        if !v.is_empty() {
            self.0
                .insert(name.into(), Value::String(STANDARD.encode(v)));
        }
        self
    }

    /// An enum field: its name, or its number when this build does not know
    /// it; left out when 0.
    fn enumeration(mut self, name: &str, number: i32, known: Option<&str>) -> Self {
        if number != 0 {
            let v = match known {
                Some(n) => Value::String(n.to_owned()),
                None => Value::from(number),
            };
            self.0.insert(name.into(), v);
        }
        self
    }

    fn timestamp(mut self, name: &str, t: Option<&prost_types::Timestamp>) -> Result<Self, String> {
        if let Some(t) = t {
            self.0.insert(
                name.into(),
                Value::String(rfc3339(t).map_err(|e| format!("{name}: {e}"))?),
            );
        }
        Ok(self)
    }

    fn object(mut self, name: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(name.into(), v);
        }
        self
    }

    fn array(mut self, name: &str, v: Vec<Value>) -> Self {
        if !v.is_empty() {
            self.0.insert(name.into(), Value::Array(v));
        }
        self
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// A `google.protobuf.Timestamp` as proto3 JSON writes it:
/// `1972-01-01T10:00:20.021Z`, with 0, 3, 6 or 9 fractional digits.
pub fn rfc3339(t: &prost_types::Timestamp) -> Result<String, String> {
    // 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999999Z
    const MIN: i64 = -62_135_596_800;
    const MAX: i64 = 253_402_300_799;
    if !(MIN..=MAX).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err("timestamp out of range".into());
    }
    let at = time::OffsetDateTime::from_unix_timestamp(t.seconds).map_err(|e| e.to_string())?;
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let n = t.nanos;
    if n != 0 {
        if n % 1_000_000 == 0 {
            out.push_str(&format!(".{:03}", n / 1_000_000));
        } else if n % 1_000 == 0 {
            out.push_str(&format!(".{:06}", n / 1_000));
        } else {
            out.push_str(&format!(".{n:09}"));
        }
    }
    out.push('Z');
    Ok(out)
}

fn sealed_payload(p: Option<&SealedPayload>) -> Option<Value> {
    p.map(|p| {
        Object::default()
            .bytes("ciphertext", &p.ciphertext)
            .string("keyId", &p.key_id)
            .done()
    })
}

fn sealed_domain(d: &SealedDomain) -> Value {
    Object::default()
        .string("domain", &d.domain)
        .object("sealed", sealed_payload(d.sealed.as_ref()))
        .done()
}

fn status_name(n: i32) -> Option<&'static str> {
    ReferralStatus::try_from(n).ok().map(|s| s.as_str_name())
}

fn reason_name(n: i32) -> Option<&'static str> {
    RefusalReason::try_from(n).ok().map(|s| s.as_str_name())
}

fn sent(e: &ReferralSent) -> Result<Value, String> {
    Ok(Object::default()
        .string("referralId", &e.referral_id)
        .string("personId", &e.person_id)
        .string("senderStructureId", &e.sender_structure_id)
        .string("targetStructureId", &e.target_structure_id)
        .string("targetServiceId", &e.target_service_id)
        .strings("domains", &e.domains)
        .string("diagnosticId", &e.diagnostic_id)
        .timestamp("sentAt", e.sent_at.as_ref())?
        .timestamp("expiresAt", e.expires_at.as_ref())?
        .object("sealedDetails", sealed_payload(e.sealed_details.as_ref()))
        .array(
            "sealedDiagnostic",
            e.sealed_diagnostic.iter().map(sealed_domain).collect(),
        )
        .done())
}

fn status_changed(e: &ReferralStatusChanged) -> Result<Value, String> {
    Ok(Object::default()
        .string("referralId", &e.referral_id)
        .string("transitionId", &e.transition_id)
        .string("personId", &e.person_id)
        .string("senderStructureId", &e.sender_structure_id)
        .string("targetStructureId", &e.target_structure_id)
        .string("targetServiceId", &e.target_service_id)
        .enumeration("fromStatus", e.from_status, status_name(e.from_status))
        .enumeration("toStatus", e.to_status, status_name(e.to_status))
        .enumeration(
            "refusalReason",
            e.refusal_reason,
            reason_name(e.refusal_reason),
        )
        .string("actorStructureId", &e.actor_structure_id)
        .timestamp("sentAt", e.sent_at.as_ref())?
        .timestamp("occurredAt", e.occurred_at.as_ref())?
        .object("sealedNote", sealed_payload(e.sealed_note.as_ref()))
        .done())
}

fn reminded(e: &ReferralReminded) -> Result<Value, String> {
    Ok(Object::default()
        .string("referralId", &e.referral_id)
        .string("senderStructureId", &e.sender_structure_id)
        .string("targetStructureId", &e.target_structure_id)
        .timestamp("sentAt", e.sent_at.as_ref())?
        .timestamp("expiresAt", e.expires_at.as_ref())?
        .done())
}

fn message_posted(e: &ReferralMessagePosted) -> Result<Value, String> {
    Ok(Object::default()
        .string("messageId", &e.message_id)
        .string("referralId", &e.referral_id)
        .string("authorStructureId", &e.author_structure_id)
        .string("recipientStructureId", &e.recipient_structure_id)
        .timestamp("postedAt", e.posted_at.as_ref())?
        .done())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos })
    }

    fn json_of(event_type: &str, m: &impl Message) -> Value {
        serde_json::from_slice(&to_json(event_type, &m.encode_to_vec()).unwrap()).unwrap()
    }

    #[test]
    fn a_sent_referral_in_canonical_json() {
        let e = ReferralSent {
            referral_id: "r1".into(),
            person_id: "p1".into(),
            sender_structure_id: "s1".into(),
            target_structure_id: "t1".into(),
            target_service_id: String::new(),
            domains: vec!["mobilite".into(), "logement".into()],
            diagnostic_id: "d1".into(),
            sent_at: ts(1_767_225_600, 0),
            expires_at: ts(1_769_817_600, 500_000_000),
            sealed_details: Some(SealedPayload {
                ciphertext: vec![0, 1, 2, 250, 251],
                key_id: "k1".into(),
            }),
            sealed_diagnostic: vec![SealedDomain {
                domain: "mobilite".into(),
                sealed: Some(SealedPayload {
                    ciphertext: b"ab".to_vec(),
                    key_id: "k1".into(),
                }),
            }],
        };
        assert_eq!(
            json_of("eva.referrals.referral.sent", &e),
            json!({
                "referralId": "r1",
                "personId": "p1",
                "senderStructureId": "s1",
                "targetStructureId": "t1",
                "domains": ["mobilite", "logement"],
                "diagnosticId": "d1",
                "sentAt": "2026-01-01T00:00:00Z",
                "expiresAt": "2026-01-31T00:00:00.500Z",
                "sealedDetails": {"ciphertext": "AAEC+vs=", "keyId": "k1"},
                "sealedDiagnostic": [
                    {"domain": "mobilite", "sealed": {"ciphertext": "YWI=", "keyId": "k1"}}
                ],
            })
        );
    }

    #[test]
    fn a_status_change_names_its_enums_and_skips_defaults() {
        let e = ReferralStatusChanged {
            referral_id: "r1".into(),
            transition_id: "x1".into(),
            from_status: ReferralStatus::Envoyee as i32,
            to_status: ReferralStatus::Refusee as i32,
            refusal_reason: RefusalReason::SessionComplete as i32,
            occurred_at: ts(0, 1_000),
            ..Default::default()
        };
        let v = json_of("eva.referrals.referral.refused", &e);
        assert_eq!(
            v,
            json!({
                "referralId": "r1",
                "transitionId": "x1",
                "fromStatus": "REFERRAL_STATUS_ENVOYEE",
                "toStatus": "REFERRAL_STATUS_REFUSEE",
                "refusalReason": "REFUSAL_REASON_SESSION_COMPLETE",
                "occurredAt": "1970-01-01T00:00:00.000001Z",
            })
        );
        // Accepted: no reason, so no `refusalReason`; an empty sealed note is `{}`.
        let e = ReferralStatusChanged {
            to_status: ReferralStatus::Acceptee as i32,
            sealed_note: Some(SealedPayload::default()),
            ..Default::default()
        };
        assert_eq!(
            json_of("eva.referrals.referral.accepted", &e),
            json!({"toStatus": "REFERRAL_STATUS_ACCEPTEE", "sealedNote": {}})
        );
        // A number this build does not know stays a number.
        let e = ReferralStatusChanged {
            to_status: 42,
            ..Default::default()
        };
        assert_eq!(
            json_of("eva.referrals.referral.expired", &e),
            json!({"toStatus": 42})
        );
    }

    #[test]
    fn reminders_and_messages() {
        let e = ReferralReminded {
            referral_id: "r1".into(),
            sender_structure_id: "s1".into(),
            target_structure_id: "t1".into(),
            sent_at: ts(1, 123_456_789),
            expires_at: None,
        };
        assert_eq!(
            json_of("eva.referrals.referral.reminded", &e),
            json!({
                "referralId": "r1",
                "senderStructureId": "s1",
                "targetStructureId": "t1",
                "sentAt": "1970-01-01T00:00:01.123456789Z",
            })
        );
        let e = ReferralMessagePosted {
            message_id: "m1".into(),
            referral_id: "r1".into(),
            author_structure_id: "a1".into(),
            recipient_structure_id: "b1".into(),
            posted_at: ts(1_767_225_600, 120_000),
        };
        assert_eq!(
            json_of("eva.referrals.message.posted", &e),
            json!({
                "messageId": "m1",
                "referralId": "r1",
                "authorStructureId": "a1",
                "recipientStructureId": "b1",
                "postedAt": "2026-01-01T00:00:00.000120Z",
            })
        );
        // Nothing set: `{}`.
        assert_eq!(
            json_of(
                "eva.referrals.message.posted",
                &ReferralMessagePosted::default()
            ),
            json!({})
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(to_json("eva.referrals.service.created", &[]).is_err());
        assert!(to_json("eva.referrals.referral.", &[]).is_err());
        assert!(to_json("eva.referrals.referral.sent", &[0xff, 0xff, 0xff]).is_err());
        let e = ReferralReminded {
            sent_at: ts(i64::MAX, 0),
            ..Default::default()
        };
        let err = to_json("eva.referrals.referral.reminded", &e.encode_to_vec()).unwrap_err();
        assert!(err.contains("sentAt"), "{err}");
        let e = ReferralReminded {
            sent_at: ts(0, -1),
            ..Default::default()
        };
        assert!(to_json("eva.referrals.referral.reminded", &e.encode_to_vec()).is_err());
    }

    #[test]
    fn timestamps_keep_the_shortest_of_3_6_or_9_digits() {
        let t = |s, n| {
            rfc3339(&prost_types::Timestamp {
                seconds: s,
                nanos: n,
            })
            .unwrap()
        };
        assert_eq!(t(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(t(0, 10_000_000), "1970-01-01T00:00:00.010Z");
        assert_eq!(t(0, 10_000), "1970-01-01T00:00:00.000010Z");
        assert_eq!(t(0, 10), "1970-01-01T00:00:00.000000010Z");
        assert_eq!(t(-62_135_596_800, 0), "0001-01-01T00:00:00Z");
        assert_eq!(
            t(253_402_300_799, 999_999_999),
            "9999-12-31T23:59:59.999999999Z"
        );
    }
}
