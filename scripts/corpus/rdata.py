"""Reads the character vectors stored in an R lazy-load database (data/Rdata.rdb with its index
data/Rdata.rdx), as r-cran-janeaustenr ships its novels. Implements just enough of R's XDR
serialization format (version 2 and 3) for vectors, pairlists and their attributes.
Python standard library only."""
import bz2
import gzip
import lzma
import os
import struct
import zlib

# SEXP types (R Internals, "Serialization Formats")
NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 0, 1, 2, 9, 10, 13, 14, 16, 19
REFSXP, NILVALUE_SXP, ENV_SPECIALS = 255, 254, {253, 252, 251, 250, 249, 248, 247, 246, 242, 241}


class RFormatError(ValueError):
    pass


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.refs = []

    def take(self, n):
        if self.pos + n > len(self.data):
            raise RFormatError("truncated R serialization")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def item(self):
        flags = self.int()
        kind = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == NILVALUE_SXP or kind in ENV_SPECIALS:
            return None
        if kind == REFSXP:
            index = flags >> 8
            return self.refs[(index or self.int()) - 1]
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == LISTSXP:  # pairlist: attr?, tag?, car, cdr
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            del attr
            return [(tag, car)] + (cdr if isinstance(cdr, list) else [])
        if kind == CHARSXP:
            n = self.int()
            return None if n == -1 else self.take(n).decode("utf-8", "replace")
        if kind in (LGLSXP, INTSXP):
            n = self.int()
            values = list(struct.unpack(">%di" % n, self.take(4 * n)))
        elif kind == REALSXP:
            n = self.int()
            values = list(struct.unpack(">%dd" % n, self.take(8 * n)))
        elif kind in (STRSXP, VECSXP):
            n = self.int()
            values = [self.item() for _ in range(n)]
        else:
            raise RFormatError("unsupported R object type %d" % kind)
        if has_attr:
            attrs = dict(self.item() or [])
            names = attrs.get("names")
            if kind == VECSXP and isinstance(names, list) and len(names) == len(values):
                return dict(zip(names, values))
        return values


def unserialize(data):
    r = _Reader(data)
    if r.take(2) != b"X\n":
        raise RFormatError("not an XDR R serialization")
    version = r.int()
    r.int()  # writer's R version
    r.int()  # minimal reader version
    if version == 3:
        r.take(r.int())  # native encoding name
    elif version != 2:
        raise RFormatError("R serialization version %d is not supported" % version)
    return r.item()


def _decompress(blob):
    # lazy-load chunks: 4-byte big-endian uncompressed length, then zlib data; with R's
    # compress = 2 or 3 a type byte follows the length: 'Z' zlib, '2' bzip2, 'X' xz, '0' none
    (length,) = struct.unpack(">I", blob[:4])
    kind, body = blob[4:5], blob[5:]
    if kind == b"2":
        out = bz2.decompress(body)
    elif kind == b"X":
        out = lzma.decompress(body)
    elif kind == b"0":
        out = body
    elif kind == b"Z":
        out = zlib.decompress(body)
    else:
        out = zlib.decompress(blob[4:])
    if len(out) != length:
        raise RFormatError("R data chunk decompressed to %d bytes, expected %d" % (len(out), length))
    return out


def load_character_vectors(data_dir):
    """{object name: list of strings} for every character vector in DIR/Rdata.rdb."""
    with open(os.path.join(data_dir, "Rdata.rdx"), "rb") as f:
        raw = f.read()
    # the index is a gzip file (saveRDS); older packages store it as a lazy-load chunk
    index = unserialize(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else _decompress(raw))
    with open(os.path.join(data_dir, "Rdata.rdb"), "rb") as f:
        rdb = f.read()
    out = {}
    for name, (offset, length) in index["variables"].items():
        obj = unserialize(_decompress(rdb[int(offset):int(offset) + int(length)]))
        if isinstance(obj, list) and all(x is None or isinstance(x, str) for x in obj):
            out[name] = [x or "" for x in obj]
    return out
