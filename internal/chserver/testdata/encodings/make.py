"""Writes the compressed fixtures of encoding_test.go with Python's encoders,
an implementation independent of the Go decoders under test (STYLE.md rule 17):
run with the clients venv (scripts/deps.sh clients), which has lz4 and zstd:

    .deps/clients/venv/bin/python internal/chserver/testdata/encodings/make.py
"""
import bz2, gzip, lzma, os, zlib

import lz4.frame
from backports import zstd

here = os.path.dirname(os.path.abspath(__file__))
plain = b"".join(b"%d,row %d,\xc3\xa9t\xc3\xa9\n" % (i, i * 7) for i in range(2000))
out = {
    "plain.csv": plain,
    "gzip.csv.gz": gzip.compress(plain, mtime=0),
    "deflate.csv.zlib": zlib.compress(plain),
    "xz.csv.xz": lzma.compress(plain, format=lzma.FORMAT_XZ),
    "bz2.csv.bz2": bz2.compress(plain),
    "lz4.csv.lz4": lz4.frame.compress(plain),
    "zstd.csv.zst": zstd.compress(plain),
}
c = zlib.compressobj(wbits=-15)
out["deflate-raw.csv.deflate"] = c.compress(plain) + c.flush()
for name, data in out.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
