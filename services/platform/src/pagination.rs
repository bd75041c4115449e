//! Opaque page tokens: lists are ordered by a key (usually the UUIDv7 id, so
//! creation order); the token carries the last key seen.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Default and maximum page sizes of every list RPC.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Rows to return.
    pub size: u32,
    /// Return rows whose key is strictly after this one.
    pub after: Option<String>,
}

/// Why a page request was refused; names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageError {
    #[error(
        "page_size doit être entre 0 et {MAX_PAGE_SIZE} / must be between 0 and {MAX_PAGE_SIZE}, got {0}"
    )]
    Size(i32),
    #[error("jeton de page inconnu / page_token is not a token this service issued")]
    Token,
}

impl PageError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            PageError::Size(_) => "page_size",
            PageError::Token => "page_token",
        }
    }
}

impl From<PageError> for tonic::Status {
    fn from(e: PageError) -> Self {
        crate::grpc::invalid_field(e.field(), &e.to_string())
    }
}

impl Page {
    /// From the `page_size` and `page_token` of a request; 0 means default.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, PageError> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 || n as u32 > MAX_PAGE_SIZE => return Err(PageError::Size(n)),
            n => n as u32,
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let raw = URL_SAFE_NO_PAD
                .decode(page_token)
                .map_err(|_| PageError::Token)?;
            let key = String::from_utf8(raw).map_err(|_| PageError::Token)?;
            let key = key.strip_prefix("k:").ok_or(PageError::Token)?.to_owned();
            Some(key)
        };
        Ok(Self { size, after })
    }

    /// Rows to fetch: one more than the page, to know if another follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Cuts the extra row and returns the token of the next page.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        if rows.len() > self.size as usize {
            rows.truncate(self.size as usize);
            let next = rows.last().map(|r| token(&key(r))).unwrap_or_default();
            (rows, next)
        } else {
            (rows, String::new())
        }
    }

    /// For lists paged by position: the number of rows to skip, carried by
    /// the token (0 without one). A token that is not a non-negative integer
    /// is refused.
    pub fn offset(&self) -> Result<i64, PageError> {
        match &self.after {
            None => Ok(0),
            Some(k) => k
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or(PageError::Token),
        }
    }

    /// [`Page::finish`] for lists paged by position: `rows` were fetched
    /// from `offset`; the next token is the offset after the rows returned.
    pub fn finish_at<T>(&self, mut rows: Vec<T>, offset: i64) -> (Vec<T>, String) {
        if rows.len() <= self.size as usize {
            return (rows, String::new());
        }
        rows.truncate(self.size as usize);
        let next = if rows.is_empty() {
            String::new()
        } else {
            token(&offset.saturating_add(rows.len() as i64).to_string())
        };
        (rows, next)
    }
}

fn token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("k:{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip() {
        let p = Page::parse(2, "").unwrap();
        let (rows, next) = p.finish(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!(rows, vec!["a", "b"]);
        let p2 = Page::parse(2, &next).unwrap();
        assert_eq!(p2.after.as_deref(), Some("b"));
        let (rows, next) = p2.finish(vec!["c"], |s| s.to_string());
        assert_eq!(rows, vec!["c"]);
        assert!(next.is_empty());
    }

    #[test]
    fn offsets_round_trip() {
        let p = Page::parse(2, "").unwrap();
        assert_eq!(p.offset(), Ok(0));
        let (rows, next) = p.finish_at(vec!["a", "b", "c"], p.offset().unwrap());
        assert_eq!(rows, vec!["a", "b"]);
        let p2 = Page::parse(2, &next).unwrap();
        assert_eq!(p2.after.as_deref(), Some("2"));
        assert_eq!(p2.offset(), Ok(2));
        let (rows, next) = p2.finish_at(vec!["c", "d", "e"], 2);
        assert_eq!(rows, vec!["c", "d"]);
        assert_eq!(Page::parse(2, &next).unwrap().offset(), Ok(4));
        // The last page: no extra row, no token.
        let (rows, next) = p2.finish_at(vec!["e", "f"], 4);
        assert_eq!(rows, vec!["e", "f"]);
        assert!(next.is_empty());
        let (rows, next) = p2.finish_at(Vec::<&str>::new(), 6);
        assert!(rows.is_empty());
        assert!(next.is_empty());
    }

    #[test]
    fn offset_tokens_match_key_tokens() {
        // Same tokens as numbering rows from the offset and keying on the last.
        let p = Page::parse(3, "").unwrap();
        let rows = vec!["a", "b", "c", "d"];
        let numbered: Vec<(i64, &str)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (10 + i as i64 + 1, *r))
            .collect();
        let (_, by_key) = p.finish(numbered, |(n, _)| n.to_string());
        let (_, by_offset) = p.finish_at(rows, 10);
        assert_eq!(by_key, by_offset);
    }

    #[test]
    fn bad_offsets_are_bad_tokens() {
        for key in ["-1", "x", "1.5", "", "99999999999999999999"] {
            let p = Page {
                size: 10,
                after: Some(key.to_owned()),
            };
            assert_eq!(p.offset(), Err(PageError::Token), "{key:?}");
        }
        let p = Page::parse(10, &token("k")).unwrap();
        assert_eq!(p.offset(), Err(PageError::Token));
        assert_eq!(p.offset().unwrap_err().field(), "page_token");
    }

    #[test]
    fn bad_requests_name_the_field() {
        assert_eq!(Page::parse(-1, ""), Err(PageError::Size(-1)));
        assert_eq!(Page::parse(501, ""), Err(PageError::Size(501)));
        assert_eq!(Page::parse(10, "!!"), Err(PageError::Token));
        assert!(
            Page::parse(10, "!!")
                .unwrap_err()
                .to_string()
                .contains("page_token")
        );
    }
}
