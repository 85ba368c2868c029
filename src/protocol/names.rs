//! Names people choose for themselves, as shown and as compared.
//!
//! A name is self-chosen and travels through the hub, so it is the easiest thing to forge.
//! Two rules keep it from fooling anyone:
//! - what is *shown* has no invisible characters (zero-width spaces, bidi overrides, other
//!   format characters), so two names that look the same are the same characters;
//! - what is *compared* is a skeleton (UTS #39): compatibility-normalised, case-folded, the
//!   default-ignorable characters dropped and confusable characters (Cyrillic `а`, `rn` for `m`,
//!   `1` for `l`) mapped to one prototype, so "аlice", "ALICE" and "al\u{200B}ice" all compare
//!   equal to "alice". The skeleton is never shown: it is a key, not a spelling.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::wire::MAX_NAME;

/// Characters that draw nothing, or reorder what is around them: Unicode's
/// Default_Ignorable_Code_Point set (DerivedCoreProperties.txt) and the format characters
/// (general category Cf), which include every bidi control.
pub fn is_invisible(c: char) -> bool {
    let default_ignorable = matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF);
    default_ignorable || c.general_category() == GeneralCategory::Format
}

/// `text` without control or invisible characters, with runs of whitespace made one space.
pub fn visible_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
        } else if !(c.is_control() || is_invisible(c)) {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// A display name as shown to users: its visible characters (see [`visible_text`]), 1 to
/// `MAX_NAME` bytes. `None` for a name with nothing visible in it, one too long, or one with a
/// control character: a line break in a name is someone trying to draw a second line of
/// text where the user expects only a name.
pub fn sanitize_name(name: &str) -> Option<String> {
    if name.chars().any(char::is_control) {
        return None;
    }
    let name = visible_text(name);
    (!name.is_empty() && name.len() <= MAX_NAME).then_some(name)
}

/// The keys two names are compared by: names that share one could be taken for each other.
/// NFKC first (fullwidth and mathematical letters become plain ones), the invisible
/// characters dropped, then UTS #39's confusable mapping and case folding in both orders:
/// folding first makes "ALICE" equal "alice", folding last keeps a capital `I` equal to `l`
/// ("aIice"), which folding first would turn into an `i`. The skeleton is never shown.
pub fn skeletons(name: &str) -> Vec<String> {
    let visible: String = name.nfkc().filter(|c| !is_invisible(*c)).collect();
    let words = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    let fold = |s: &str| -> String { s.chars().flat_map(char::to_lowercase).collect() };
    let skeleton = |s: &str| -> String { unicode_security::confusable_detection::skeleton(s).collect() };
    let fold_first = skeleton(&fold(&words));
    let fold_last = skeleton(&fold(&skeleton(&words)));
    if fold_first == fold_last { vec![fold_first] } else { vec![fold_first, fold_last] }
}

/// Whether a person could take `a` for `b`.
pub fn looks_like(a: &str, b: &str) -> bool {
    let b = skeletons(b);
    skeletons(a).iter().any(|s| b.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_share_a_skeleton() {
        for forged in [
            "\u{0430}lice",          // Cyrillic a
            "ALICE",                 // case
            "Alice",                 // case
            "al\u{200B}ice",         // zero-width space
            "ali\u{00AD}ce",         // soft hyphen
            "a\u{2060}lice",         // word joiner
            "\u{FF41}lice",          // fullwidth a
            "\u{1D41A}lice",         // mathematical bold a
            "a1ice",                 // digit one for l
            "aIice",                 // capital I for l
            " alice ",               // surrounding space
            "\u{202E}alice\u{202C}", // bidi override around it
        ] {
            assert!(looks_like(forged, "alice"), "{forged:?} should look like alice");
            assert!(looks_like("alice", forged), "{forged:?} should look like alice");
        }
        assert!(looks_like("rnallory", "Mallory"));
        assert!(!looks_like("alice", "alicia"));
        assert!(!looks_like("bob", "rob"));
        assert!(!looks_like("ann", "anne"));
    }

    #[test]
    fn shown_names_have_no_invisible_characters() {
        assert_eq!(sanitize_name("  al\u{200B}ice  ").as_deref(), Some("alice"));
        assert_eq!(sanitize_name("eve\u{202E}gpj.exe").as_deref(), Some("evegpj.exe"));
        assert_eq!(sanitize_name("a\tb\nc"), None);
        assert_eq!(sanitize_name("a \u{2003} b").as_deref(), Some("a b"));
        assert_eq!(sanitize_name("\u{200B}\u{FEFF}"), None);
        assert_eq!(sanitize_name(""), None);
        assert_eq!(sanitize_name(&"x".repeat(MAX_NAME + 1)), None);
        assert_eq!(sanitize_name("Zoë 🦊").as_deref(), Some("Zoë 🦊"));
        // What is left is visible: nothing in it is a format character.
        let cleaned = sanitize_name("a\u{061C}\u{2066}b\u{2069}\u{E0041}c").unwrap();
        assert_eq!(cleaned, "abc");
    }
}
