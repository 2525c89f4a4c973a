#!/usr/bin/env python3
"""spanscope's corpus builder: long, coherent English documents from Debian 12 documentation
packages (unpacked by fetch_packages.sh), cleaned to plain text.

    build_corpus.py WORK OUT

writes into OUT:
  tokenizer_sample.txt a fifth of the training documents (by hash), for the tokenizer
  train.txt, val.txt   documents separated by a line holding only <|endoftext|>; a document goes
                       to val when md5(id) % 50 == 0 (2 %); the held-out samples are in neither
  samples/NAME.txt     the sample documents (8k-64k tokens) with samples/index.json (source
                       package, version, path, licence, bytes)
  documents.jsonl      one line per document: id, source, package, path, licence, split, bytes
  stats.json           documents and bytes per source and split
  LICENSES.md          which licence covers which source (from the packages' copyright files)
Python standard library, groff and pod2text only. Progress goes to stderr.
"""
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rdata  # noqa: E402
import textclean as tc  # noqa: E402

SEPARATOR = "<|endoftext|>"
MIN_BYTES = 1500  # shorter documents carry little long-range structure


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


class Packages:
    def __init__(self, work):
        self.root = os.path.join(work, "pkg")
        self.versions = {}
        with open(os.path.join(work, "packages.tsv")) as f:
            for line in f:
                name, version = line.rstrip("\n").split("\t")
                self.versions[name] = version

    def path(self, package, *parts):
        return os.path.join(self.root, package, *parts)

    def installed_path(self, package, path):
        return "/" + os.path.relpath(path, self.path(package))

    def files(self, package, base, pattern):
        top = self.path(package, base)
        rx = re.compile(pattern)
        found = []
        for d, _, names in os.walk(top):
            for n in names:
                full = os.path.join(d, n)
                if rx.search(os.path.relpath(full, top)) and not os.path.islink(full):
                    found.append(full)
        return sorted(found)


# --- extractors: each yields (doc id, package, path inside the package, text) -------------------

def linux_doc(p):
    pkg = "linux-doc-6.1"
    base = "usr/share/doc/linux-doc-6.1/Documentation"
    skip = ("translations/", "ABI/", "devicetree/", "netlink/", "sphinx", "output/")
    for f in p.files(pkg, base, r"\.(rst|txt)\.gz$"):
        rel = os.path.relpath(f, p.path(pkg, base))
        if rel.startswith(skip):
            continue
        yield "linux/" + rel[:-3], pkg, f, tc.rst_to_text(read_text(f))


def python_doc(p):
    pkg = "python3.11-doc"
    base = "usr/share/doc/python3.11/html/_sources"
    for f in p.files(pkg, base, r"\.rst\.txt$"):
        rel = os.path.relpath(f, p.path(pkg, base))
        if rel.startswith("whatsnew/changelog"):
            continue  # a list of issue numbers, not prose
        yield "python/" + rel[:-8], pkg, f, tc.rst_to_text(read_text(f))


def perl_doc(p):
    pkg = "perl-doc"
    for f in p.files(pkg, "usr/share/perl/5.36.0/pod", r"\.pod$"):
        out = subprocess.run(["pod2text", "-w", "80", f], capture_output=True, check=False)
        yield "perl/" + os.path.basename(f)[:-4], pkg, f, tc.tidy(out.stdout.decode("utf-8", "replace"))


def html_chain(p, pkg, directory, start, prefix, doc_break, drop_classes):
    """Follows <link rel="next"> from `start`, one document per run of pages between breaks."""
    page = start
    seen = set()
    doc_pages, doc_text = [], []

    def flush():
        if doc_pages:
            name = os.path.splitext(os.path.basename(doc_pages[0]))[0]
            yield prefix + name, pkg, doc_pages[0], tc.tidy("\n\n".join(doc_text))

    while page and page not in seen and os.path.exists(os.path.join(directory, page)):
        seen.add(page)
        src = read_text(os.path.join(directory, page))
        title = re.search(r"(?is)<title[^>]*>(.*?)</title>", src)
        title = re.sub(r"\s+", " ", title.group(1)) if title else ""
        if doc_break(page, title):
            yield from flush()
            doc_pages, doc_text = [], []
        body = re.search(r"(?is)<body[^>]*>(.*)</body>", src)
        doc_pages.append(os.path.join(directory, page))
        doc_text.append(tc.html_to_text(body.group(1) if body else src, drop_classes))
        nxt = re.search(r'(?is)<link[^>]*rel="next"[^>]*href="([^"#]+)', src) or \
            re.search(r'(?is)<link[^>]*href="([^"#]+)"[^>]*rel="next"', src)
        page = nxt.group(1) if nxt else None
    yield from flush()


def postgresql(p):
    pkg = "postgresql-doc-15"
    d = p.path(pkg, "usr/share/doc/postgresql-doc-15/html")
    yield from html_chain(p, pkg, d, "index.html", "postgresql/",
                          lambda page, title: re.match(r"(Chapter|Part|Appendix) ", title) is not None,
                          ("navheader", "navfooter", "toc"))


def debian_handbook(p):
    pkg = "debian-handbook"
    d = p.path(pkg, "usr/share/doc/debian-handbook/html/en-US")
    yield from html_chain(p, pkg, d, "index.html", "debian-handbook/",
                          lambda page, title: re.search(r"Chapter \d+\.|^Appendix", title) is not None,
                          ("navheader", "navfooter", "toc", "docnav", "breadcrumbs", "legalnotice"))


def debian_reference(p):
    pkg = "debian-reference-en"
    for f in p.files(pkg, "usr/share/debian-reference", r"ch\d+\.en\.html$"):
        yield "debian-reference/" + os.path.basename(f)[:4], pkg, f, \
            tc.html_to_text(read_text(f), ("navheader", "navfooter", "toc"))


def rust_books(p):
    pkg = "rust-doc"
    for book in ("book", "reference", "nomicon", "rust-by-example", "rustc", "edition-guide", "embedded-book"):
        f = p.path(pkg, "usr/share/doc/rust-doc/html", book, "print.html")
        if not os.path.exists(f):
            continue
        src = read_text(f)
        main = re.search(r"(?s)<main>(.*)</main>", src)
        yield "rust/" + book, pkg, f, tc.html_to_text(main.group(1) if main else src,
                                                      ("sidebar", "menu-bar", "nav-chapters", "boring"))


def vim_help(p):
    pkg = "vim-runtime"
    for f in p.files(pkg, "usr/share/vim/vim90/doc", r"\.txt(\.gz)?$"):
        name = os.path.basename(f).split(".txt")[0]
        if name not in ("tags", "help"):
            yield "vim/" + name, pkg, f, tc.vimhelp_to_text(read_text(f))


def git_doc(p):
    pkg = "git-doc"
    for f in p.files(pkg, "usr/share/doc/git-doc", r"\.txt$"):
        rel = os.path.relpath(f, p.path(pkg, "usr/share/doc/git-doc"))
        if not rel.startswith("RelNotes"):
            yield "git/" + rel[:-4], pkg, f, tc.asciidoc_to_text(read_text(f))


def cpp_annotations(p):
    pkg = "c++-annotations-txt"
    f = p.path(pkg, "usr/share/doc/c++-annotations/cplusplus.txt.gz")
    text = read_text(f)
    starts = [m.start() for m in re.finditer(r"(?m)^Chapter \d+: ", text)]
    # the table of contents lists every chapter first; the body starts at the second "Chapter 1"
    ones = [s for s in starts if text.startswith("Chapter 1: ", s)]
    body = [s for s in starts if s >= (ones[1] if len(ones) > 1 else 0)]
    for i, s in enumerate(body):
        chunk = text[s:body[i + 1] if i + 1 < len(body) else len(text)]
        num = int(re.match(r"Chapter (\d+)", chunk).group(1))
        yield "cplusplus/chapter%02d" % num, pkg, f, tc.tidy(chunk)


def info_file(main):
    """The text of an info manual, joining split parts (Indirect: table)."""
    text = read_text(main)
    table = re.search(r"\x1f\nIndirect:\n(.*?)\x1f", text, re.S)
    if not table:
        return text
    parts = []
    for line in table.group(1).strip().split("\n"):
        part = os.path.join(os.path.dirname(main), line.split(":")[0].strip())
        parts.append(read_text(part + ".gz" if os.path.exists(part + ".gz") else part))
    return "\x1f".join(parts)


INFO_MANUALS = [("r-doc-info", r"^R-[a-z]+\.info\.gz$"), ("bash-doc", r"^bash\.info\.gz$"),
                ("coreutils", r"^coreutils\.info\.gz$"), ("sed", r"^sed\.info\.gz$"),
                ("grep", r"^grep\.info\.gz$"), ("findutils", r"^find\.info\.gz$"),
                ("diffutils", r"^diffutils\.info\.gz$"), ("gzip", r"^gzip\.info\.gz$"),
                ("wget", r"^wget\.info\.gz$")]


def info_manuals(p):
    for pkg, rx in INFO_MANUALS:
        for f in p.files(pkg, "usr/share/info", rx):
            name = os.path.basename(f).split(".info")[0]
            yield "info/" + name, pkg, f, tc.info_to_text(info_file(f))


def man_pages(p):
    for pkg in ("manpages", "manpages-dev"):
        for f in p.files(pkg, "usr/share/man", r"^man\d/[^/]+\.gz$"):
            src = read_text(f)
            if re.match(r"\s*\.so\s", src) and src.count("\n") < 3:
                continue  # an alias page
            src = re.sub(r"(?m)^(\.TH .*)$", r"\1\n.ad l", src, count=1)  # ragged right, no padding
            out = subprocess.run(["groff", "-t", "-man", "-Tutf8", "-P-cbu", "-rLL=100n", "-rHY=0"],
                                 input=src.encode(), capture_output=True, check=False)
            name = os.path.basename(f)[:-3]
            yield "man/" + name, pkg, f, tc.tidy(out.stdout.decode("utf-8", "replace"))


STOP_WORDS = set("the of and to a in is that for it as with be on by this are or an not from at "
                 "which can you if we all will one has have its was".split())


def english_share(text):
    words = re.findall(r"[A-Za-z]+", re.sub(r"\\[A-Za-z]+", " ", text))
    return sum(w.lower() in STOP_WORDS for w in words) / max(1, len(words))


def latex_sources(p):
    seen = set()
    for pkg in ("texlive-latex-base-doc", "texlive-latex-recommended-doc", "texlive-publishers-doc",
                "texlive-science-doc"):
        for f in p.files(pkg, "usr/share/doc", r"\.tex(\.gz)?$"):
            text = read_text(f)
            digest = hashlib.sha1(text.encode()).hexdigest()
            if digest in seen or text.count("\ufffd") > 20 or english_share(text) < 0.10:
                continue  # duplicates, other encodings, non-English documentation
            seen.add(digest)
            rel = os.path.relpath(f, p.path(pkg, "usr/share/doc"))
            yield "latex/" + re.sub(r"\.tex(\.gz)?$", "", rel.replace("texlive-doc/", "")), pkg, f, tc.tidy(text)


def austen(p):
    pkg = "r-cran-janeaustenr"
    d = p.path(pkg, "usr/lib/R/site-library/janeaustenr/data")
    for name, lines in rdata.load_character_vectors(d).items():
        yield "austen/" + name, pkg, os.path.join(d, "Rdata.rdb") + "[%s]" % name, tc.tidy("\n".join(lines))


def gutenberg(p):
    pkg = "golang-1.19-src"
    f = p.path(pkg, "usr/share/go-1.19/src/testdata/Isaac.Newton-Opticks.txt")
    yield "gutenberg/newton-opticks", pkg, f, tc.tidy(read_text(f))


def jargon(p):
    pkg = "jargon-text"
    f = p.path(pkg, "usr/share/doc/jargon-text/jargon.txt.gz")
    yield "jargon/jargon", pkg, f, tc.tidy(read_text(f))


def licences(p):
    pkg = "base-files"
    for f in p.files(pkg, "usr/share/common-licenses", r"^[A-Za-z0-9.-]+$"):
        yield "license/" + os.path.basename(f), pkg, f, tc.tidy(read_text(f))


# source name, extractor, licence (as the packages' copyright files state it)
SOURCES = [
    ("linux-doc", linux_doc, "GPL-2"),
    ("python-doc", python_doc, "PSF-2.0"),
    ("perl-doc", perl_doc, "GPL-1+ or Artistic"),
    ("postgresql-doc", postgresql, "PostgreSQL"),
    ("debian-handbook", debian_handbook, "GPL-2+ or CC-BY-SA-3.0"),
    ("debian-reference", debian_reference, "GPL-2+"),
    ("rust-books", rust_books, "MIT or Apache-2.0"),
    ("vim-help", vim_help, "Vim"),
    ("git-doc", git_doc, "GPL-2"),
    ("cplusplus-annotations", cpp_annotations, "GPL-2+"),
    ("info-manuals", info_manuals, "GFDL-1.3+ (GNU manuals), GPL-2+ (R manuals)"),
    ("man-pages", man_pages, "Linux man-pages copyleft and per-page licences"),
    ("latex", latex_sources, "per file, mostly LPPL-1.3c"),
    ("austen", austen, "public domain text (package MIT)"),
    ("gutenberg", gutenberg, "public domain (Project Gutenberg text)"),
    ("jargon", jargon, "public domain"),
    ("licences", licences, "verbatim copying permitted"),
]


def chapters_below(limit, heading):
    """Excerpt rule: the opening chapters of a long text, cut at a heading below `limit` bytes."""
    def cut(text):
        starts = [m.start() for m in re.finditer(heading, text)] + [len(text)]
        end = starts[0] if starts else len(text)
        for s in starts[1:]:
            if len(text[:s].encode()) > limit:
                break
            end = s
        return text[:end] if end > 0 else text[:limit]
    return cut


# The held-out sample documents: name, doc id, kind, excerpt rule (None: whole), description.
SAMPLES = [
    ("kernel_memory_barriers", "linux/memory-barriers.txt", "technical manual", None,
     "Linux kernel memory-barriers.txt (D. Howells, P. E. McKenney)"),
    ("gnu_sed_manual", "info/sed", "software manual", None, "GNU sed manual"),
    ("gpl3_license", "license/GPL-3", "licence", None, "GNU General Public License, version 3"),
    ("aastex_sample_article", "latex/latex/aastex/sample631", "LaTeX paper", None,
     "AASTeX 6.31 sample article (abstract, sections, equations, tables, references)"),
    ("austen_pride_prejudice", "austen/prideprejudice", "novel",
     chapters_below(200_000, r"(?m)^Chapter \d+\s*$"),
     "Jane Austen, Pride and Prejudice, the opening chapters (cut at a chapter below 200 kB)"),
    ("newton_opticks", "gutenberg/newton-opticks", "scientific treatise",
     chapters_below(180_000, r"(?m)^_PROP\._ [IVXL]+\."),
     "Isaac Newton, Opticks (1730), from the start to a proposition below 160 kB"),
]


def is_validation(doc_id):
    return int(hashlib.md5(doc_id.encode()).hexdigest(), 16) % 50 == 0


def in_tokenizer_sample(doc_id):
    """A fifth of the training documents, from every source, train the tokenizer."""
    return int(hashlib.md5(doc_id.encode()).hexdigest(), 16) % 5 == 1


def copyright_file(p, pkg):
    f = p.path(pkg, "usr/share/doc", pkg, "copyright")
    return f if os.path.exists(f) else None


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: build_corpus.py WORK OUT")
    work, out = argv[1], argv[2]
    p = Packages(work)
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    sample_ids = {s[1]: s for s in SAMPLES}
    tmp = {name: open(os.path.join(out, name + ".tmp"), "w", encoding="utf-8")
           for name in ("train.txt", "val.txt", "documents.jsonl", "tokenizer_sample.txt")}
    stats, samples_found, used_packages = {}, [], {}
    t0 = time.time()
    for source, extract, licence in SOURCES:
        st = stats.setdefault(source, {"train_docs": 0, "train_bytes": 0, "val_docs": 0, "val_bytes": 0,
                                       "skipped_short": 0, "licence": licence})
        for doc_id, pkg, path, text in extract(p):
            used_packages.setdefault(pkg, licence)
            size = len(text.encode())
            if doc_id in sample_ids:
                name, _, kind, rule, description = sample_ids[doc_id]
                body = rule(text) if rule else text
                with open(os.path.join(out, "samples", name + ".txt"), "w", encoding="utf-8") as f:
                    f.write(body)
                samples_found.append({"name": name, "file": name + ".txt", "kind": kind,
                                      "description": description, "doc_id": doc_id, "package": pkg,
                                      "version": p.versions.get(pkg, "?"),
                                      "path": p.installed_path(pkg, path.split("[")[0]) +
                                      ("[" + path.split("[")[1] if "[" in path else ""),
                                      "licence": licence, "excerpt": rule is not None,
                                      "bytes": len(body.encode())})
                continue  # held out of train and val
            if size < MIN_BYTES:
                st["skipped_short"] += 1
                continue
            split = "val" if is_validation(doc_id) else "train"
            tmp[split + ".txt"].write(text.rstrip("\n") + "\n" + SEPARATOR + "\n")
            if split == "train" and in_tokenizer_sample(doc_id):
                tmp["tokenizer_sample.txt"].write(text.rstrip("\n") + "\n" + SEPARATOR + "\n")
            st[split + "_docs"] += 1
            st[split + "_bytes"] += size
            tmp["documents.jsonl"].write(json.dumps({
                "id": doc_id, "source": source, "package": pkg, "version": p.versions.get(pkg, "?"),
                "path": p.installed_path(pkg, path.split("[")[0]), "licence": licence,
                "split": split, "bytes": size}) + "\n")
        print("[corpus] %-22s %5d train docs %7.2f MB, %3d val docs (%.0f s)" %
              (source, st["train_docs"], st["train_bytes"] / 1e6, st["val_docs"], time.time() - t0),
              file=sys.stderr, flush=True)
    missing = set(sample_ids) - {s["doc_id"] for s in samples_found}
    if missing:
        sys.exit("[corpus] error: sample documents not found: " + ", ".join(sorted(missing)))
    for name, f in tmp.items():
        f.close()
        os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
    with open(os.path.join(out, "samples", "index.json"), "w") as f:
        json.dump(samples_found, f, indent=1)
    totals = {k: sum(s[k] for s in stats.values()) for k in ("train_docs", "train_bytes", "val_docs", "val_bytes")}
    with open(os.path.join(out, "stats.json"), "w") as f:
        json.dump({"sources": stats, "total": totals, "packages": p.versions}, f, indent=1)
    with open(os.path.join(out, "LICENSES.md"), "w") as f:
        f.write("# Licences of the corpus text\n\nAll packages are from Debian 12 (bookworm) main.\n\n"
                "| package | version | licence | copyright file |\n|---|---|---|---|\n")
        for pkg in sorted(used_packages):
            c = copyright_file(p, pkg)
            f.write("| %s | %s | %s | %s |\n" % (pkg, p.versions.get(pkg, "?"), used_packages[pkg],
                                                 "/usr/share/doc/%s/copyright" % pkg if c else "-"))
    print("[corpus] done: %d train docs (%.1f MB), %d val docs (%.1f MB), %d samples in %.0f s -> %s" %
          (totals["train_docs"], totals["train_bytes"] / 1e6, totals["val_docs"], totals["val_bytes"] / 1e6,
           len(samples_found), time.time() - t0, out), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
