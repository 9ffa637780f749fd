"""The demo model's vocabulary: the 256 bytes (token id == byte value) plus one
extra token, id 256 = "\\n\\n", the end-of-turn marker of the rwkv-world chat
format (llama.cpp's RWKV World vocab has the same token as its EOT, id 261).

Encoding is greedy longest match, which is what llama.cpp's "rwkv" tokenizer
does over its trie: "\\n\\n" becomes 256, "\\n\\n\\n" becomes 256, 10.
Token strings in the GGUF are escaped the way llama.cpp's RWKV converter writes
them (Python bytes repr without the b'' quotes), e.g. "\\x00", "\\n", "\\\\".
"""

import numpy as np

N_VOCAB = 257
EOT_ID = 256
EOT_TEXT = b"\n\n"
GGUF_TOKEN_TYPE_NORMAL = 1


def encode(data: bytes) -> np.ndarray:
    # bytes.split is a left-to-right, non-overlapping scan: the same as greedy
    # longest match with the single two-byte token.
    parts = data.split(EOT_TEXT)
    out = []
    for i, part in enumerate(parts):
        if i:
            out.append(np.array([EOT_ID], dtype=np.int64))
        out.append(np.frombuffer(part, dtype=np.uint8).astype(np.int64))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def token_bytes(token_id: int) -> bytes:
    return EOT_TEXT if token_id == EOT_ID else bytes([token_id])


def decode(ids) -> bytes:
    return b"".join(token_bytes(int(t)) for t in ids)


def gguf_token_strings():
    """Token texts as written into tokenizer.ggml.tokens."""
    return [repr(token_bytes(i))[2:-1] for i in range(N_VOCAB)]


def _self_check():
    for text in [b"", b"a", b"\n", b"\n\n", b"\n\n\n", b"a\n\nb\nc\n\n\n\nd", bytes(range(256))]:
        ids = encode(text)
        assert decode(ids) == text, text
    assert list(encode(b"x\n\n\ny")) == [120, EOT_ID, 10, 121]
    assert gguf_token_strings()[256] == "\\n\\n"


_self_check()
