//! Word error rate: the word-level edit distance between what was said (the reference) and
//! what the server heard (the hypothesis), after the usual normalisation.

/// `text` as words for comparison: lowercase (Unicode); every character that is neither a
/// letter, a digit nor an apostrophe inside a word becomes a space (punctuation, hyphens,
/// quotes); apostrophes at a word's edges are dropped (`'tis` → `tis`, `dogs'` → `dogs`, but
/// `don't` stays); whitespace collapses. Numbers are kept as written: `10` and `ten` differ.
///
/// ```
/// use loadkit_asr_multipart::normalize;
///
/// assert_eq!(normalize("Hello, World! It's a well-known \"fact\"."),
///            ["hello", "world", "it's", "a", "well", "known", "fact"]);
/// assert_eq!(normalize("  ÉTÉ  'quoted' "), ["été", "quoted"]);
/// ```
pub fn normalize(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() || c == '\'' || c == '\u{2019}' {
            cleaned.extend(
                c.to_lowercase()
                    .map(|c| if c == '\u{2019}' { '\'' } else { c }),
            );
        } else {
            cleaned.push(' ');
        }
    }
    cleaned
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Substitutions + deletions + insertions turning `reference` into `hypothesis` (the minimum,
/// by dynamic programming over words, two rows of memory).
///
/// ```
/// use loadkit_asr_multipart::{normalize, word_edits};
///
/// let r = normalize("the cat sat on the mat");
/// assert_eq!(word_edits(&r, &normalize("the cat sat on the mat")), 0);
/// assert_eq!(word_edits(&r, &normalize("the cat sat on a mat")), 1);    // substitution
/// assert_eq!(word_edits(&r, &normalize("cat sat on the mat")), 1);      // deletion
/// assert_eq!(word_edits(&r, &normalize("the cat sat on the mat too")), 1); // insertion
/// ```
pub fn word_edits(reference: &[String], hypothesis: &[String]) -> u64 {
    let mut previous: Vec<u64> = (0..=hypothesis.len() as u64).collect();
    let mut current = vec![0u64; hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        current[0] = i as u64 + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let substitution = previous[j] + u64::from(r != h);
            let deletion = previous[j + 1] + 1;
            let insertion = current[j] + 1;
            current[j + 1] = substitution.min(deletion).min(insertion);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[hypothesis.len()]
}

/// The word error rate of `hypothesis` against `reference` (normalised words): edits /
/// reference words; `None` for an empty reference (nothing to be wrong about).
pub fn wer(reference: &[String], hypothesis: &[String]) -> Option<f64> {
    (!reference.is_empty())
        .then(|| word_edits(reference, hypothesis) as f64 / reference.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(r: &str, h: &str) -> Option<f64> {
        wer(&normalize(r), &normalize(h))
    }

    #[test]
    fn known_pairs() {
        assert_eq!(w("The quick brown fox.", "the quick brown fox"), Some(0.0));
        assert_eq!(w("one two three four", "one two tree four"), Some(0.25));
        assert_eq!(w("one two three four", "one four"), Some(0.5));
        assert_eq!(w("one two", "one two three four"), Some(1.0));
        assert_eq!(w("a b c", ""), Some(1.0));
        assert_eq!(w("", "anything"), None);
        // Whole-sentence mistakes: more edits than words is possible.
        assert_eq!(w("yes", "no no no"), Some(3.0));
        // Case, punctuation and curly apostrophes do not count.
        assert_eq!(w("Don\u{2019}t STOP, now!", "don't stop now"), Some(0.0));
        // Numbers are words as written.
        assert_eq!(w("ten apples", "10 apples"), Some(0.5));
        // A known clip: PocketSphinx heard espeak-ng's "the quick brown fox jumps over the
        // lazy dog" (9 words) as "we don't call it soda on": 9 edits (6 substitutions, 3
        // deletions).
        assert_eq!(
            w(
                "the quick brown fox jumps over the lazy dog",
                "we don't call it soda on"
            ),
            Some(1.0)
        );
    }
}
