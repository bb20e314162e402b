//! Which characters of a text show: a text of only whitespace, control characters (NUL), format
//! characters (zero-width spaces, direction marks, the byte-order mark, tags) and other
//! characters that render as nothing (fillers, variation selectors, blank patterns) has nothing
//! to say, like an empty one.

/// Whether `text` has a character that shows.
pub(super) fn has_visible(text: &str) -> bool {
    text.chars().any(|c| !is_invisible(c))
}

/// Whitespace, controls (Unicode category Cc), format characters (Cf) and the characters that
/// render as nothing although of another category.
fn is_invisible(c: char) -> bool {
    c.is_whitespace() || c.is_control() || is_format(c) || renders_as_nothing(c)
}

/// Unicode general category Cf (format), Unicode 15.1.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Invisible characters of other categories: the combining grapheme joiner, Hangul and
/// halfwidth fillers, Khmer inherent vowels, Mongolian and standard variation selectors, the
/// blank Braille pattern.
fn renders_as_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180D}'
            | '\u{180F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

#[cfg(test)]
mod tests {
    use super::has_visible;

    #[test]
    fn only_invisible_characters_say_nothing() {
        for text in [
            "",
            " \t\n",
            "\u{0}\u{0}",
            "\u{200B}\u{200B}\u{200B}",
            "\u{200E}\u{200F}\u{202E}",
            "\u{FEFF} \u{2060}\u{00AD}",
            "\u{3164}\u{FE0F}\u{2800}\u{E0041}",
            "\u{1B}\u{7F}\u{85}",
        ] {
            assert!(!has_visible(text), "{text:?}");
        }
        for text in ["a", "\u{200B}a\u{200B}", "é", "日本", "\u{0}.", "😀"] {
            assert!(has_visible(text), "{text:?}");
        }
    }
}
