//! Pre-tokenizers: split text into the pieces BPE merges within, as llama.cpp does for the
//! `tokenizer.ggml.pre` names it groups together.
//!
//! - `gpt2`: the GPT-2 pattern
//!   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
//! - `smollm` (shared by starcoder, refact, command-r, codeshell, exaone): first every single
//!   digit `\p{N}` becomes its own chunk (the text between digits stays a chunk), then the GPT-2
//!   pattern runs inside each chunk; lookahead never crosses a chunk's end.
//!
//! The `regex` crate has no lookahead, so `\s+(?!\S)` is done by hand: a whitespace run longer
//! than one character that is followed by a non-space gives up its last character, which then
//! starts the next match (so `"  word"` splits as `" "`, `" word"`).

use regex::Regex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizerKind {
    Gpt2,
    SmolLm,
}

impl PreTokenizerKind {
    /// The kind for a `tokenizer.ggml.pre` value, using llama.cpp's grouping.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gpt2" | "gpt-2" | "mpt" | "olmo" | "jais" => Some(Self::Gpt2),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" => {
                Some(Self::SmolLm)
            }
            _ => None,
        }
    }

    pub const SUPPORTED: &'static str =
        "gpt2 (also gpt-2, mpt, olmo, jais), smollm (also starcoder, refact, command-r, codeshell, exaone)";
}

pub struct PreTokenizer {
    kind: PreTokenizerKind,
    gpt2: Regex,
    digit: Regex,
}

impl PreTokenizer {
    pub fn new(kind: PreTokenizerKind) -> Self {
        // The lookahead alternative `\s+(?!\S)` is folded into the final `\s+` (see module doc).
        let gpt2 = Regex::new(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+")
            .expect("static pattern");
        let digit = Regex::new(r"\p{N}").expect("static pattern");
        PreTokenizer { kind, gpt2, digit }
    }

    pub fn kind(&self) -> PreTokenizerKind {
        self.kind
    }

    /// Call `piece` with each pre-token of `text`, in order; the pieces concatenate to `text`.
    pub fn split<'t>(&self, text: &'t str, piece: &mut dyn FnMut(&'t str)) {
        match self.kind {
            PreTokenizerKind::Gpt2 => self.split_gpt2(text, piece),
            PreTokenizerKind::SmolLm => {
                let mut last = 0;
                for m in self.digit.find_iter(text) {
                    if m.start() > last {
                        self.split_gpt2(&text[last..m.start()], piece);
                    }
                    piece(m.as_str());
                    last = m.end();
                }
                if last < text.len() {
                    self.split_gpt2(&text[last..], piece);
                }
            }
        }
    }

    fn split_gpt2<'t>(&self, chunk: &'t str, piece: &mut dyn FnMut(&'t str)) {
        let mut pos = 0;
        while pos < chunk.len() {
            let Some(m) = self.gpt2.find_at(chunk, pos) else {
                // Unreachable for this pattern (every character matches some alternative), but
                // unmatched text stays a piece of its own, as in llama.cpp.
                piece(&chunk[pos..]);
                return;
            };
            if m.start() > pos {
                piece(&chunk[pos..m.start()]);
            }
            let mut end = m.end();
            let is_space_run = m.as_str().starts_with(char::is_whitespace)
                && m.as_str().chars().all(char::is_whitespace);
            if is_space_run && end < chunk.len() {
                // `\s+(?!\S)`: leave the last whitespace character for the next match.
                let last = m.as_str().chars().next_back().map_or(0, char::len_utf8);
                if m.len() > last {
                    end -= last;
                }
            }
            piece(&chunk[m.start()..end]);
            pos = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(kind: PreTokenizerKind, text: &str) -> Vec<String> {
        let p = PreTokenizer::new(kind);
        let mut out = Vec::new();
        p.split(text, &mut |s| out.push(s.to_string()));
        assert_eq!(out.concat(), text);
        out
    }

    #[test]
    fn gpt2_pattern_with_lookahead() {
        use PreTokenizerKind::Gpt2;
        assert_eq!(pieces(Gpt2, "Hello world"), ["Hello", " world"]);
        assert_eq!(pieces(Gpt2, " Hello  world!  "), [" Hello", " ", " world", "!", "  "]);
        assert_eq!(pieces(Gpt2, "it's 123"), ["it", "'s", " 123"]);
        assert_eq!(pieces(Gpt2, "a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(pieces(Gpt2, "a \n b"), ["a", " \n", " b"]);
        assert_eq!(pieces(Gpt2, "x   "), ["x", "   "]);
        assert_eq!(pieces(Gpt2, "I'M"), ["I", "'", "M"]);
        assert_eq!(pieces(Gpt2, ""), Vec::<String>::new());
    }

    #[test]
    fn smollm_splits_every_digit_first() {
        use PreTokenizerKind::SmolLm;
        assert_eq!(pieces(SmolLm, "it's 12345"), ["it", "'s", " ", "1", "2", "3", "4", "5"]);
        assert_eq!(pieces(SmolLm, "3.14 x"), ["3", ".", "1", "4", " x"]);
        assert_eq!(pieces(SmolLm, "a  1"), ["a", "  ", "1"]);
    }
}
