#!/usr/bin/env python3
"""Unit tests of the corpus builder's text cleaning and R data reader (scripts/corpus/), on
hand-made inputs: the builder itself needs Debian's packages, which CI does not download."""
import gzip
import os
import struct
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "corpus"))
import build_corpus  # noqa: E402
import rdata  # noqa: E402
import textclean as tc  # noqa: E402


class TextClean(unittest.TestCase):
    def test_rst_keeps_prose_and_code_drops_markup(self):
        src = """.. SPDX-License-Identifier: GPL-2.0

==========
Barriers
==========

.. toctree::
   :maxdepth: 2

   other-page

See :ref:`the guide <guide-label>` and :c:func:`smp_mb` for ``READ_ONCE()``.

.. note::
   Ordering is hard.

Example::

    x = 1;
"""
        out = tc.rst_to_text(src)
        self.assertIn("Barriers", out)
        self.assertNotIn("=====", out)
        self.assertNotIn("toctree", out)
        self.assertNotIn("other-page", out)
        self.assertNotIn("SPDX", out)
        self.assertIn("See the guide and smp_mb for READ_ONCE().", out)
        self.assertIn("Note:", out)
        self.assertIn("Ordering is hard.", out)
        self.assertIn("Example:\n", out)
        self.assertIn("    x = 1;", out)

    def test_html_drops_navigation_and_scripts(self):
        src = ('<html><head><title>T</title><script>var x;</script></head><body>'
               '<div class="navheader">Prev Next</div><h2>Title</h2><p>First&nbsp;para <b>bold</b>.</p>'
               '<pre>  code\n    indented</pre><ul><li>one</li><li>two</li></ul></body></html>')
        out = tc.html_to_text(src, ("navheader",))
        self.assertNotIn("Prev", out)
        self.assertNotIn("var x", out)
        self.assertIn("## Title", out)
        self.assertIn("First para bold.", out)  # &nbsp; becomes a space
        self.assertIn("    indented", out)
        self.assertIn("* one", out)

    def test_info_drops_headers_menus_and_tables(self):
        src = ("This is sed.info, produced by makeinfo version 6.8 from sed.texi.\n\nIntro text.\n"
               "\x1f\nFile: sed.info,  Node: Top,  Next: Intro,  Up: (dir)\n\nsed\n***\n\n* Menu:\n\n"
               "* Intro::  An introduction.\n* Invoking::  How to run.\n\nBody after the menu, *note Invoking::.\n"
               "\x1f\nTag Table:\nNode: Top\x7f123\n\x1f\nEnd Tag Table\n")
        out = tc.info_to_text(src)
        self.assertNotIn("File: sed.info", out)
        self.assertNotIn("Tag Table", out)
        self.assertNotIn("An introduction", out)
        self.assertNotIn("produced by makeinfo", out)
        self.assertIn("Body after the menu, Invoking.", out)
        self.assertIn("Intro text.", out)

    def test_tidy(self):
        self.assertEqual(tc.tidy("a  \r\n\n\n\n\tb\n\n"), "a\n\n        b\n")


def xdr_string_vector(strings):
    """An R serialization (XDR, version 3) of a character vector, built by hand."""
    out = b"X\n" + struct.pack(">iii", 3, 0x040202, 0x030500) + struct.pack(">i", 5) + b"UTF-8"
    out += struct.pack(">ii", 16, len(strings))  # STRSXP
    for s in strings:
        b = s.encode()
        out += struct.pack(">ii", 9 | (1 << 15), len(b)) + b  # CHARSXP (UTF-8 flag)
    return out


class RData(unittest.TestCase):
    def test_reads_character_vectors_from_a_lazy_load_database(self):
        with tempfile.TemporaryDirectory() as d:
            novels = {"emma": ["CHAPTER I", "", "Emma Woodhouse, handsome, clever, and rich"],
                      "tiny": ["a", "b\u00e9"]}
            rdb, index = b"", []
            for name, lines in novels.items():
                raw = xdr_string_vector(lines)
                chunk = struct.pack(">I", len(raw)) + zlib.compress(raw)
                index.append((name, len(rdb), len(chunk)))
                rdb += chunk
            # the index: a named list (VECSXP with a names attribute) holding "variables", a
            # named list of (offset, length) integer pairs
            def intvec(a, b):
                return struct.pack(">iiii", 13, 2, a, b)
            def names_attr(names):
                body = struct.pack(">ii", 16, len(names))
                for n in names:
                    body += struct.pack(">ii", 9, len(n)) + n.encode()
                # pairlist: LISTSXP with tag, tag = SYMSXP "names", car = STRSXP, cdr = NILVALUE
                return (struct.pack(">i", 2 | (1 << 10)) + struct.pack(">i", 1) + struct.pack(">ii", 9, 5) + b"names" +
                        body + struct.pack(">i", 254))
            variables = struct.pack(">ii", 19 | (1 << 9), len(index))
            for _, off, ln in index:
                variables += intvec(off, ln)
            variables += names_attr([n for n, _, _ in index])
            top = struct.pack(">ii", 19 | (1 << 9), 1) + variables + names_attr(["variables"])
            header = b"X\n" + struct.pack(">iii", 2, 0x040202, 0x020300)
            with open(os.path.join(d, "Rdata.rdx"), "wb") as f:
                f.write(gzip.compress(header + top))
            with open(os.path.join(d, "Rdata.rdb"), "wb") as f:
                f.write(rdb)
            self.assertEqual(rdata.load_character_vectors(d), novels)

    def test_truncated_data_is_an_error(self):
        with self.assertRaises(rdata.RFormatError):
            rdata.unserialize(xdr_string_vector(["hello"])[:-2])


class Builder(unittest.TestCase):
    def test_split_is_stable_and_about_two_percent(self):
        ids = ["doc/%d" % i for i in range(20000)]
        share = sum(build_corpus.is_validation(i) for i in ids) / len(ids)
        self.assertTrue(0.015 < share < 0.025, share)
        self.assertEqual([build_corpus.is_validation(i) for i in ids[:50]], [build_corpus.is_validation(i) for i in ids[:50]])

    def test_excerpts_cut_at_a_heading_below_the_limit(self):
        text = "".join("Chapter %d\n%s\n" % (i, "x" * 100) for i in range(1, 30))
        cut = build_corpus.chapters_below(1000, r"(?m)^Chapter \d+\s*$")(text)
        self.assertLessEqual(len(cut), 1000)
        self.assertTrue(cut.startswith("Chapter 1\n"))
        self.assertTrue(text[len(cut):].startswith("Chapter "))

    def test_english_share_separates_prose_from_markup(self):
        self.assertGreater(build_corpus.english_share("This is the text of a manual, and it is in English."), 0.3)
        self.assertLess(build_corpus.english_share("\\def\\x{\\y} \\foo \\bar Zahl und Wort"), 0.1)


if __name__ == "__main__":
    unittest.main()
