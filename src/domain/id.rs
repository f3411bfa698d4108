//! Org and environment ids.

/// Whether `id` is a valid org or environment id: 1-64 letters, digits,
/// `-` or `_`. The config and URLs share this rule.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
