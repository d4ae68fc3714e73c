//! Byte-pair merging of one pre-token, in O(n log n): symbols form a linked list, candidate
//! pairs sit in a min-heap keyed by (merge rank, position); a popped pair is applied only if
//! both symbols are unchanged since it was pushed (symbols only ever grow, so unchanged length
//! means unchanged symbol). Equal ranks merge left to right, as in llama.cpp.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Stands for a byte the vocabulary has no token for: it never merges and is dropped from
/// the output (llama.cpp drops such bytes too).
pub const NO_TOKEN: u32 = u32::MAX;

/// A multiplicative hash for the table's `u64` pair keys (the keys are not attacker-chosen
/// in a way that matters: the table is built once from the model file). SipHash, the default,
/// was a third of the encoding time.
#[derive(Default)]
pub struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// `(left id << 32 | right id) → (rank, merged id)`; see [`pair`].
pub type MergeTable = HashMap<u64, (u32, u32), BuildHasherDefault<PairHasher>>;

/// The key of the pair (left, right).
pub fn pair(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// Buffers reused across the pre-tokens of one text.
#[derive(Default)]
pub struct Scratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Reverse<Candidate>>,
}

#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    /// bytes of the pre-token this symbol covers
    len: u32,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate pair: (rank, left index, left len, right index, right len); the heap pops the
/// smallest rank, then the leftmost.
type Candidate = (u32, usize, u32, usize, u32);

/// Merge `ids` (one token per byte of a pre-token) and append the resulting ids to `out`.
pub fn merge(ids: &[u32], merges: &MergeTable, scratch: &mut Scratch, out: &mut Vec<u32>) {
    if ids.len() <= 1 {
        out.extend(ids.iter().copied().filter(|&id| id != NO_TOKEN));
        return;
    }
    let Scratch { symbols, heap } = scratch;
    symbols.clear();
    heap.clear();
    symbols.extend(ids.iter().enumerate().map(|(i, &id)| Symbol {
        id,
        len: 1,
        prev: i.checked_sub(1),
        next: (i + 1 < ids.len()).then_some(i + 1),
    }));
    let push = |heap: &mut BinaryHeap<_>, symbols: &[Symbol], left: usize, right: usize| {
        let (l, r) = (symbols[left], symbols[right]);
        if let Some(&(rank, _)) = merges.get(&pair(l.id, r.id)) {
            heap.push(Reverse((rank, left, l.len, right, r.len)));
        }
    };
    for i in 0..symbols.len() - 1 {
        push(heap, symbols, i, i + 1);
    }
    while let Some(Reverse((_, left, left_len, right, right_len))) = heap.pop() {
        let (l, r) = (symbols[left], symbols[right]);
        // stale: either side merged since, or no longer neighbours (right was absorbed)
        if l.len != left_len || r.len != right_len || l.next != Some(right) || r.len == 0 {
            continue;
        }
        let (_, merged) = merges[&pair(l.id, r.id)];
        symbols[left].id = merged;
        symbols[left].len += r.len;
        symbols[left].next = r.next;
        symbols[right].len = 0;
        if let Some(n) = r.next {
            symbols[n].prev = Some(left);
        }
        if let Some(p) = symbols[left].prev {
            push(heap, symbols, p, left);
        }
        if let Some(n) = symbols[left].next {
            push(heap, symbols, left, n);
        }
    }
    let mut at = Some(0);
    while let Some(i) = at {
        if symbols[i].id != NO_TOKEN {
            out.push(symbols[i].id);
        }
        at = symbols[i].next;
    }
}
