"""Markup to plain text for the corpus builder: reStructuredText, HTML, GNU info, Vim help,
AsciiDoc. Each function keeps the prose and code of a document and drops navigation, directives
and markup that a reader would not see. Python standard library only."""
import html
import html.parser
import re

_BLANK_RUNS = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+\n")


def tidy(text):
    """Normalises line ends, strips trailing blanks and collapses runs of empty lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = text.expandtabs(8)
    text = _TRAILING.sub("\n", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n") + "\n"


# --- reStructuredText ------------------------------------------------------------------------
_RST_ROLE = re.compile(r":[a-zA-Z:+-]+:`([^`]*)`")
_RST_REF_TARGET = re.compile(r"^(.*?)\s*<[^<>]+>$", re.S)
_RST_DIRECTIVE = re.compile(r"^(\s*)\.\. ([a-zA-Z0-9_:-]+)::\s*(.*)$")
_RST_COMMENT = re.compile(r"^\s*\.\.(\s|$)")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")
# Directives whose body is prose or code a reader sees; everything else (toctree, index,
# kernel-doc, only, raw, ...) is dropped with its indented body.
_RST_KEEP = {"note", "warning", "tip", "important", "caution", "attention", "hint", "danger",
             "admonition", "seealso", "code-block", "code", "sourcecode", "literalinclude",
             "versionadded", "versionchanged", "deprecated", "function", "method", "class",
             "attribute", "data", "exception", "module", "describe", "option", "envvar",
             "c:function", "c:macro", "c:type", "c:struct", "decorator", "productionlist",
             "topic", "sidebar", "rubric", "epigraph", "highlights", "pull-quote", "doctest",
             "testcode", "testoutput", "cmdoption", "opcode", "pdbcommand", "index-entry"}


def _role_text(m):
    inner = m.group(1)
    target = _RST_REF_TARGET.match(inner)
    inner = target.group(1) if target else inner
    return inner.lstrip("~!")


def rst_to_text(src):
    out = []
    skip_indent = None  # inside a dropped directive: skip lines indented deeper than this
    for line in src.split("\n"):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        d = _RST_DIRECTIVE.match(line)
        if d:
            name = d.group(2).lower()
            if name in _RST_KEEP:
                arg = d.group(3).strip()
                if name in ("note", "warning", "tip", "important", "caution", "hint", "danger"):
                    out.append(d.group(1) + name.capitalize() + ":" + (" " + arg if arg else ""))
                elif arg and name not in ("code-block", "code", "sourcecode", "literalinclude",
                                          "doctest", "testcode", "testoutput"):
                    out.append(d.group(1) + arg)
            else:
                skip_indent = indent
            continue
        if _RST_COMMENT.match(line):
            # a comment (or a hyperlink target / substitution definition) with its body
            skip_indent = indent
            continue
        if _RST_UNDERLINE.match(line) and (not out or out[-1].strip()):
            # section title adornment: drop it (over- and underlines)
            continue
        line = _RST_ROLE.sub(_role_text, line)
        line = re.sub(r"`([^`<]*?)\s*<[^>]+>`__?", r"\1", line)  # `text <url>`_
        line = re.sub(r"``([^`]+)``", r"\1", line)
        line = re.sub(r"`([^`]+)`_{0,2}", r"\1", line)
        line = re.sub(r"\|([A-Za-z0-9_-]+)\|", r"\1", line)
        if line.rstrip().endswith("::") and not line.rstrip().endswith(" ::"):
            line = line.rstrip()[:-1]  # "Example::" -> "Example:"
        elif stripped == "::":
            continue
        out.append(line)
    return tidy("\n".join(out))


# --- HTML --------------------------------------------------------------------------------------
class _HtmlText(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table",
             "ul", "ol", "dl", "dt", "dd", "blockquote", "section", "article", "hr", "title"}
    DROP = {"script", "style", "nav", "head", "button", "noscript", "svg"}

    def __init__(self, drop_classes):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.stack = []  # (tag, dropping) for every open element
        self.drop_depth = 0
        self.pre = 0
        self.drop_classes = set(drop_classes)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split()) | {a.get("id") or ""}
        dropping = tag in self.DROP or bool(classes & self.drop_classes)
        if tag in ("br", "hr", "img", "meta", "link", "input", "col", "wbr"):
            if tag == "br" and not self.drop_depth:
                self.parts.append("\n")
            return
        self.stack.append((tag, dropping))
        if dropping:
            self.drop_depth += 1
        if tag == "pre":
            self.pre += 1
        if not self.drop_depth:
            if tag in self.BLOCK:
                self.parts.append("\n\n" if tag in ("p", "pre", "table", "h1", "h2", "h3", "h4") else "\n")
            if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                self.parts.append("#" * int(tag[1]) + " ")
            elif tag == "li":
                self.parts.append("* ")
            elif tag in ("td", "th"):
                self.parts.append(" | ")

    def handle_endtag(self, tag):
        # close up to the matching element (HTML in the wild is not always balanced)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                for t, dropping in self.stack[i:]:
                    if dropping:
                        self.drop_depth -= 1
                    if t == "pre":
                        self.pre -= 1
                del self.stack[i:]
                break
        if not self.drop_depth and tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.drop_depth:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
        self.parts.append(data)


def html_to_text(src, drop_classes=()):
    p = _HtmlText(drop_classes)
    p.feed(src)
    p.close()
    text = "".join(p.parts)
    text = "\n".join(line.strip(" ") if not line.startswith("    ") else line.rstrip()
                     for line in text.split("\n"))
    return tidy(html.unescape(text))


# --- GNU info ----------------------------------------------------------------------------------
def info_to_text(src):
    """Drops the node headers, menus, the tag table and the indirect table of an info file."""
    out = []
    for node in src.split("\x1f"):
        node = node.lstrip("\n")
        if node.startswith(("Tag Table:", "Indirect:", "End Tag Table", "Local Variables")):
            continue
        lines = node.split("\n")
        if lines and lines[0].startswith("File:"):
            lines = lines[1:]
        in_menu = False
        for line in lines:
            if line.startswith("* Menu:"):
                in_menu = True
                continue
            if in_menu:
                if line.startswith("* ") or not line.strip() or line.startswith(" "):
                    continue
                in_menu = False
            if re.match(r"^\s*\*Note\b", line) is None:
                line = re.sub(r"\*[Nn]ote ([^:]+)::", r"\1", line)
            out.append(line)
        out.append("")
    text = "\n".join(out)
    text = re.sub(r"(?m)^This is [^\n]*\.info, produced by makeinfo[^\n]*\n", "", text)
    return tidy(text)


# --- Vim help ----------------------------------------------------------------------------------
def vimhelp_to_text(src):
    out = []
    for line in src.split("\n"):
        if line.startswith(" vim:") or line.startswith("vim:tw"):
            continue
        line = re.sub(r"\*([^*\s]+)\*", r"\1", line)   # *tag* targets
        line = re.sub(r"\|([^|\s]+)\|", r"\1", line)   # |links|
        line = re.sub(r"(?<=\s)[>]$", "", line)        # code block start marker
        if line.strip() == "<":
            continue
        out.append(line)
    return tidy("\n".join(out))


# --- AsciiDoc ----------------------------------------------------------------------------------
def asciidoc_to_text(src):
    out = []
    for line in src.split("\n"):
        if re.match(r"^(-{4,}|={4,}|\.{4,}|\+{4,}|_{4,}|~{4,}|\^{4,})\s*$", line):
            continue
        if re.match(r"^(ifdef|ifndef|endif|include)::", line) or line.startswith(("//", ":")):
            continue
        line = re.sub(r"link(?:git)?:([^\[]+)\[([^\]]*)\]", lambda m: m.group(2) or m.group(1), line)
        line = re.sub(r"\{litdd\}", "--", line)
        out.append(line)
    return tidy("\n".join(out))
