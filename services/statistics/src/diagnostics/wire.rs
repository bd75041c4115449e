//! Decoding of `DiagnosticShared` and `DiagnosticSuperseded` straight from
//! the protobuf wire format, borrowing every item's ids from the body: the
//! generated types allocate two strings per item (57 items a diagnostic),
//! which made decoding the largest cost of ingestion. Same rules as prost:
//! unknown fields skipped, the last value of a repeated scalar wins, nested
//! messages merged, strings checked as UTF-8, anything malformed refused.

use eva_proto::diagnostics::v1::RecordingContext;
use prost::Message;

/// Why a body does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// One item of either event: ids, and the two values it carries
/// (`DiagnosticShared`: counselor and person levels; `DiagnosticSuperseded`:
/// the counselor's evolution, and 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    pub domain: &'a str,
    pub item: &'a str,
    pub first: i32,
    pub second: i32,
}

/// The fields statistics reads of either event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnostic<'a> {
    pub pseudonym: &'a str,
    /// The (new) diagnostic's context.
    pub context: Option<RecordingContext>,
    /// The (new) diagnostic's day.
    pub shared_on: &'a str,
    pub items: Vec<Item<'a>>,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(WireError("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(WireError("varint too long"))
    }

    /// (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8), WireError> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(WireError("field number 0"));
        }
        Ok((field, (k & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(WireError("truncated field"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(self.varint()?).map_err(|_| WireError("length too large"))?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError("string not UTF-8"))
    }

    fn skip(&mut self, wire: u8) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.take(8).map(|_| ()),
            LEN => self.bytes().map(|_| ()),
            FIXED32 => self.take(4).map(|_| ()),
            _ => Err(WireError("unsupported wire type")),
        }
    }
}

fn expect(wire: u8, want: u8) -> Result<(), WireError> {
    if wire == want {
        Ok(())
    } else {
        Err(WireError("wrong wire type for a known field"))
    }
}

fn merge_context(ctx: &mut Option<RecordingContext>, body: &[u8]) -> Result<(), WireError> {
    ctx.get_or_insert_default()
        .merge(body)
        .map_err(|_| WireError("undecodable recording context"))
}

/// An item: ids in fields 1 and 2, then the varint fields `first` and
/// `second` (0 for none); other varint fields are read and ignored.
fn item(body: &[u8], first: u64, second: u64) -> Result<Item<'_>, WireError> {
    let mut r = Reader::new(body);
    let mut it = Item {
        domain: "",
        item: "",
        first: 0,
        second: 0,
    };
    while !r.done() {
        match r.key()? {
            (1, w) => {
                expect(w, LEN)?;
                it.domain = r.str()?;
            }
            (2, w) => {
                expect(w, LEN)?;
                it.item = r.str()?;
            }
            // Enums are int32 on the wire: truncated like prost does.
            (f, w) if f == first => {
                expect(w, VARINT)?;
                it.first = r.varint()? as i32;
            }
            (f, w) if f == second => {
                expect(w, VARINT)?;
                it.second = r.varint()? as i32;
            }
            (3..=8, w) => {
                expect(w, VARINT)?;
                r.varint()?;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(it)
}

/// `eva.diagnostics.v1.DiagnosticShared`.
pub fn shared(body: &[u8]) -> Result<Diagnostic<'_>, WireError> {
    let mut r = Reader::new(body);
    let mut d = Diagnostic::default();
    while !r.done() {
        match r.key()? {
            (1, w) => {
                expect(w, LEN)?;
                d.pseudonym = r.str()?;
            }
            (2, w) => {
                expect(w, LEN)?;
                r.str()?;
            }
            (3, w) => {
                expect(w, LEN)?;
                merge_context(&mut d.context, r.bytes()?)?;
            }
            (4, w) => {
                expect(w, LEN)?;
                d.shared_on = r.str()?;
            }
            (5, w) => {
                expect(w, LEN)?;
                d.items.push(item(r.bytes()?, 3, 4)?);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(d)
}

/// `eva.diagnostics.v1.DiagnosticSuperseded`, with the new diagnostic's
/// context and day, and each change's counselor evolution.
pub fn superseded(body: &[u8]) -> Result<Diagnostic<'_>, WireError> {
    let mut r = Reader::new(body);
    let mut d = Diagnostic::default();
    let mut previous = None;
    while !r.done() {
        match r.key()? {
            (1, w) => {
                expect(w, LEN)?;
                d.pseudonym = r.str()?;
            }
            (2 | 3 | 6, w) => {
                expect(w, LEN)?;
                r.str()?;
            }
            (4, w) => {
                expect(w, LEN)?;
                merge_context(&mut previous, r.bytes()?)?;
            }
            (5, w) => {
                expect(w, LEN)?;
                merge_context(&mut d.context, r.bytes()?)?;
            }
            (7, w) => {
                expect(w, LEN)?;
                d.shared_on = r.str()?;
            }
            (8, w) => {
                expect(w, LEN)?;
                d.items.push(item(r.bytes()?, 5, 0)?);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eva_proto::diagnostics::v1::{
        DiagnosticShared, DiagnosticSuperseded, ItemLevel, ItemLevelChange,
    };

    fn ctx(commune: &str) -> RecordingContext {
        RecordingContext {
            structure_kind: 2,
            commune_insee: commune.into(),
            epci: "200000001".into(),
            departement: "27".into(),
        }
    }

    #[test]
    fn shared_as_prost_reads_it() {
        let m = DiagnosticShared {
            statistics_pseudonym: "ab12".into(),
            referentiel_version: "2026.1".into(),
            context: Some(ctx("27229")),
            shared_on: "2026-03-04".into(),
            items: vec![
                ItemLevel {
                    domain_id: "mobilite".into(),
                    item_id: "mobilite.permis".into(),
                    counselor_level: 2,
                    person_level: 5,
                },
                ItemLevel {
                    domain_id: "sante".into(),
                    item_id: "sante.moral".into(),
                    counselor_level: -1,
                    person_level: 0,
                },
            ],
        };
        let mut body = m.encode_to_vec();
        // Unknown fields of every wire type are skipped.
        body.extend_from_slice(&[0xf8, 0x06, 0x2a]); // field 111, varint 42
        body.extend_from_slice(&[0xfa, 0x06, 0x02, b'h', b'i']); // field 111, bytes
        body.extend_from_slice(&[0xf9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]); // fixed64
        body.extend_from_slice(&[0xfd, 0x06, 1, 2, 3, 4]); // fixed32
        let d = shared(&body).unwrap();
        assert_eq!(d.pseudonym, "ab12");
        assert_eq!(d.context, m.context);
        assert_eq!(d.shared_on, "2026-03-04");
        assert_eq!(
            d.items,
            vec![
                Item {
                    domain: "mobilite",
                    item: "mobilite.permis",
                    first: 2,
                    second: 5
                },
                Item {
                    domain: "sante",
                    item: "sante.moral",
                    first: -1,
                    second: 0
                },
            ]
        );
        // Fields repeated: last scalar wins, messages merge, as prost does.
        let mut twice = m.encode_to_vec();
        twice.extend(
            DiagnosticShared {
                statistics_pseudonym: "cd34".into(),
                context: Some(RecordingContext {
                    commune_insee: "76540".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let p = DiagnosticShared::decode(twice.as_slice()).unwrap();
        let d = shared(&twice).unwrap();
        assert_eq!(d.pseudonym, p.statistics_pseudonym);
        assert_eq!(d.context, p.context);
        assert_eq!(d.items.len(), p.items.len());
    }

    #[test]
    fn superseded_as_prost_reads_it() {
        let m = DiagnosticSuperseded {
            statistics_pseudonym: "ab12".into(),
            previous_referentiel_version: "2025.1".into(),
            referentiel_version: "2026.1".into(),
            previous_context: Some(ctx("27681")),
            context: Some(ctx("27229")),
            previous_shared_on: "2025-11-02".into(),
            shared_on: "2026-03-04".into(),
            changes: vec![ItemLevelChange {
                domain_id: "mobilite".into(),
                item_id: "mobilite.permis".into(),
                previous_counselor_level: 2,
                counselor_level: 3,
                counselor_evolution: 1,
                previous_person_level: 2,
                person_level: 2,
                person_evolution: 2,
            }],
        };
        let body = m.encode_to_vec();
        let d = superseded(&body).unwrap();
        assert_eq!(d.pseudonym, "ab12");
        assert_eq!(d.context, m.context);
        assert_eq!(d.shared_on, "2026-03-04");
        assert_eq!(
            d.items,
            vec![Item {
                domain: "mobilite",
                item: "mobilite.permis",
                first: 1,
                second: 0
            }]
        );
    }

    #[test]
    fn malformed_bodies_are_refused_like_prost() {
        let body = DiagnosticShared {
            statistics_pseudonym: "ab12".into(),
            items: vec![ItemLevel {
                domain_id: "mobilite".into(),
                item_id: "mobilite.permis".into(),
                counselor_level: 2,
                person_level: 5,
            }],
            ..Default::default()
        }
        .encode_to_vec();
        for bad in [
            &body[..body.len() - 1],   // truncated
            &[0x0a, 0x02, 0xff, 0xfe], // pseudonym not UTF-8
            &[0x08, 0x01],             // pseudonym as a varint
            &[0x00],                   // field 0
            &[0x0b],                   // group start
            &[0xf8, 0xff, 0xff, 0xff], // truncated key
            &[0x2a, 0x02, 0x18, 0x80], // item: truncated level
            &[0x2a, 0x02, 0x1a, 0x00], // item: level as bytes
        ] {
            assert!(shared(bad).is_err(), "{bad:?}");
            assert!(DiagnosticShared::decode(bad).is_err(), "prost: {bad:?}");
        }
        assert!(superseded(&[0x42, 0x01]).is_err());
    }
}
