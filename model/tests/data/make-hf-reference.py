# Regenerates hf-tokenizers-reference.jsonl (see README.md): random strings tokenized by
# Hugging Face `tokenizers` built from the vocabulary and merges of the GGUF file.
# usage: python make-hf-reference.py SEED MODEL.gguf > hf-tokenizers-reference.jsonl
import json, random, sys
from gguf import GGUFReader
from tokenizers import Tokenizer, models, pre_tokenizers, AddedToken
r = GGUFReader(sys.argv[2])
tokens = r.fields['tokenizer.ggml.tokens'].contents()
merges = r.fields['tokenizer.ggml.merges'].contents()
types = r.fields['tokenizer.ggml.token_type'].contents()
vocab = {t: i for i, t in enumerate(tokens)}
bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(' ', 1)) for m in merges])
tk = Tokenizer(bpe)
tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
tk.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in range(len(tokens)) if types[i] == 3])
rng = random.Random(int(sys.argv[1]))
alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + list(" \t\n\r  ") + list(".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`") + \
   ["'s","'t","'re","'ve","'m","'ll","'d","'S"," the"," and","  ","   ","\n\n"," \n","\u00a0","\u2003","\u3000","é","ü","ß","ñ","日本","語","中文","한국어","🦀","🚀","👍🏽","²","½","Ⅻ","٣","\u0301","\u200b","—","“","”","…","€","¥","∑","√","α","Ω","ﬁ","\u2028","\x0b","\x0c","\x85","\x00","\x01","<|im_start|>","<|im_end|>","<|im","|>"]
out = []
for n in range(1000):
    k = rng.randint(1, 60)
    s = "".join(rng.choice(alphabet) for _ in range(k))
    out.append({"text": s, "ids": tk.encode(s, add_special_tokens=False).ids})
for line in out:
    print(json.dumps(line, ensure_ascii=False))
