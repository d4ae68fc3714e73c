//! The vocabulary in two flat buffers: every token's text concatenated in id order with its
//! start offsets, and an open-addressing table of ids keyed by text. For SmolLM2's 49 152
//! tokens that is ~1 MiB, where a `Vec<String>` plus a `HashMap<String, u32>` (a heap
//! allocation per text, twice) held ~6 MiB.

/// An empty slot of the id table.
const EMPTY: u32 = u32::MAX;

pub struct Vocab {
    /// Token texts, concatenated; token `i` is `texts[starts[i]..starts[i + 1]]`.
    texts: String,
    starts: Vec<u32>,
    /// Ids by `hash(text) & (len − 1)`, linear probing; at most half full.
    table: Vec<u32>,
}

/// FNV-1a over the text's bytes (the table is built once from the model file; its keys are
/// not chosen to collide in a way that matters).
fn hash(text: &str) -> usize {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (h ^ (h >> 32)) as usize
}

impl Vocab {
    /// The vocabulary of `texts` (id = index). Of duplicate texts, the first id is found by
    /// [`Vocab::id`], as in a map built in id order. Panics past `u32::MAX` bytes or tokens
    /// (the caller caps the count).
    pub fn new(texts: &[&str]) -> Vocab {
        let total: usize = texts.iter().map(|t| t.len()).sum();
        let mut vocab = Vocab {
            texts: String::with_capacity(total),
            starts: Vec::with_capacity(texts.len() + 1),
            table: vec![EMPTY; (2 * texts.len()).next_power_of_two().max(2)],
        };
        let mask = vocab.table.len() - 1;
        for (id, text) in texts.iter().enumerate() {
            let start = u32::try_from(vocab.texts.len()).expect("vocabulary under 4 GiB");
            vocab.starts.push(start);
            vocab.texts.push_str(text);
            let mut slot = hash(text) & mask;
            loop {
                match vocab.table[slot] {
                    EMPTY => {
                        vocab.table[slot] = u32::try_from(id).expect("under 2^32 tokens");
                        break;
                    }
                    other if vocab.text(other) == *text => break,
                    _ => slot = (slot + 1) & mask,
                }
            }
        }
        vocab.starts.push(vocab.texts.len() as u32);
        vocab
    }

    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// The text of token `id` (panics outside the vocabulary).
    pub fn text(&self, id: u32) -> &str {
        let i = id as usize;
        &self.texts[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// The text of token `id`, if it is in the vocabulary.
    pub fn get(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.len()).then(|| self.text(id))
    }

    /// The (first) id whose text is `text`.
    pub fn id(&self, text: &str) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut slot = hash(text) & mask;
        loop {
            match self.table[slot] {
                EMPTY => return None,
                id if self.text(id) == text => return Some(id),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Every text in id order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        (0..self.len() as u32).map(|id| self.text(id))
    }
}

#[cfg(test)]
mod tests {
    use super::Vocab;

    #[test]
    fn finds_every_text_and_the_first_of_duplicates() {
        let texts: Vec<String> = (0..1000).map(|i| format!("t{}", i % 700)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let v = Vocab::new(&refs);
        assert_eq!(v.len(), 1000);
        for (i, t) in refs.iter().enumerate() {
            assert_eq!(v.text(i as u32), *t);
            assert_eq!(v.id(t), Some((i % 700) as u32), "{t}");
        }
        assert_eq!(v.id("t700"), None);
        assert_eq!(v.id(""), None);
        assert_eq!(v.get(1000), None);
        let empty = Vocab::new(&["", "a"]);
        assert_eq!((empty.id(""), empty.id("a"), empty.id("b")), (Some(0), Some(1), None));
    }
}
