//! Text fields of request bodies: one rule, stated the same way to the server and in the
//! OpenAPI schemas, so that a request the document allows is taken and one it forbids is not.
//!
//! A text is at most `max` characters *as sent* (padding is stored, so it counts), and not
//! blank: it holds a character other than space, tab, CR and LF. The schemas say so with
//! `maxLength` and `pattern = "[^ \t\n\r]"`; the stored value loses those four at both ends.

use super::error::ApiError;

/// What blank means here: only these characters.
const BLANK: [char; 4] = [' ', '\t', '\n', '\r'];

/// `value` checked as a text field `name` of at most `max` characters, without its blank
/// ends.
pub fn text(name: &str, value: &str, max: usize) -> Result<String, ApiError> {
    if value.len() > 4 * max || value.chars().count() > max {
        return Err(ApiError::unprocessable(format!(
            "{name}: at most {max} characters"
        )));
    }
    let trimmed = value.trim_matches(BLANK);
    if trimmed.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "{name}: must not be empty"
        )));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_bounded_as_sent_and_blank_means_only_spaces_tabs_and_line_ends() {
        assert_eq!(text("t", "  Rose jam \n", 20).unwrap(), "Rose jam");
        assert!(text("t", " \t\r\n", 20).is_err());
        assert!(text("t", "", 20).is_err());
        assert!(text("t", &format!("a{}", " ".repeat(20)), 20).is_err());
        // Other spaces are characters like any (the schema's pattern says the same).
        assert_eq!(text("t", "\u{3000}", 20).unwrap(), "\u{3000}");
        assert_eq!(text("t", &"é".repeat(20), 20).unwrap(), "é".repeat(20));
    }
}
