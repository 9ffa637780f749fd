"""The training text: the King James Bible as shipped by Debian's bible-kjv-text
package (public domain; see /usr/share/doc/bible-kjv-text/copyright), read with
the package's own reader, `bible` (package bible-kjv), because the data file
/usr/lib/bible.data is in that program's private compressed format.

Split (fixed): the 1189 chapters in canonical order are numbered 0..1188;
every chapter whose number is 19 mod 20 (the 20th, 40th, ...) is held out
(59 chapters, ~5% of the text, spread over the whole book); the rest is training text.

Rendering: the verse texts of each split, in order, become one long dialogue in
the rwkv-world chat format, turns strictly alternating and each ending with
"\\n\\n" (the end-of-turn token):

    User: In the beginning God created the heaven and the earth.\\n\\n
    Assistant: And the earth was without form, and void; ...\\n\\n
    User: ...

so that flatline's chat front end ("User: ...\\n\\nAssistant:") gets a reply in
the style of the next verse, ended by the end-of-turn token.
"""

import hashlib
import re
import subprocess

VERSE_RE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.+)$")
HELDOUT_EVERY = 20
HELDOUT_REMAINDER = 19
ROLES = ("User", "Assistant")


def read_verses():
    """[(book, chapter, verse, text)] in canonical order, from the `bible` program."""
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], stdin=subprocess.DEVNULL,
                         capture_output=True, check=True).stdout
    verses = []
    for line in out.decode("ascii").splitlines():
        if not line:
            continue
        m = VERSE_RE.match(line)
        if not m:
            raise ValueError(f"unexpected line from `bible`: {line[:80]!r}")
        verses.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).strip()))
    if len(verses) != 31102:
        raise ValueError(f"expected 31102 KJV verses from `bible`, found {len(verses)}")
    return verses


def split_chapters(verses):
    """Returns (train_verses, heldout_verses), lists of verse texts."""
    train, heldout = [], []
    chapter_index = -1
    last = None
    for book, chapter, _, text in verses:
        if (book, chapter) != last:
            chapter_index += 1
            last = (book, chapter)
        target = heldout if chapter_index % HELDOUT_EVERY == HELDOUT_REMAINDER else train
        target.append(text)
    if chapter_index + 1 != 1189:
        raise ValueError(f"expected 1189 chapters, found {chapter_index + 1}")
    return train, heldout


def render_dialogue(texts):
    return "".join(f"{ROLES[i % 2]}: {t}\n\n" for i, t in enumerate(texts)).encode("ascii")


def load():
    """Returns dict with train/heldout bytes and provenance."""
    verses = read_verses()
    train, heldout = split_chapters(verses)
    train_bytes = render_dialogue(train)
    heldout_bytes = render_dialogue(heldout)
    return {
        "train": train_bytes,
        "heldout": heldout_bytes,
        "n_train_verses": len(train),
        "n_heldout_verses": len(heldout),
        "train_sha256": hashlib.sha256(train_bytes).hexdigest(),
        "heldout_sha256": hashlib.sha256(heldout_bytes).hexdigest(),
    }


def package_versions():
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", "bible-kjv", "bible-kjv-text"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()
