"""String normalisation of a LaTeX answer, shared by the fast path and the sympy path.

Both sides of a comparison go through the same function, so an ambiguous convention (is `1,000` a
thousand or a pair?) is resolved the same way on both and cannot by itself cause a mismatch. Every
step is a linear regex or scan: this runs in the parent process on every response.
"""

from __future__ import annotations

import re

from ar3po_jax.rewards.extract import balanced_group

_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_WRAPPERS = ("\\boxed", "\\fbox")
# Words the text-dropping step turns into list separators: "1 \text{ and } 2" is the list 1, 2.
_CONJUNCTIONS = {"and", "or", ",", "and also"}
_TEXT_COMMANDS = ("\\text", "\\textbf", "\\textit", "\\textrm", "\\mbox", "\\textnormal")
_UNWRAP_COMMANDS = ("\\mathrm", "\\mathbf", "\\mathit", "\\operatorname", "\\boldsymbol")

_SIZING = re.compile(r"\\(?:left|right|middle|[Bb]igg?[lr]?)(?:\\?\.(?![\d]))?(?![a-zA-Z])")
# The lookbehind keeps the row break `\\\\ ` of a matrix from reading as the space command `\\ `.
_SPACING = re.compile(r"(?<!\\)\\[,;: ]|\\q?quad(?![a-zA-Z])|~")
# `\!` is a negative thin space: it joins rather than separates, as in MATH's `11,\! 111,\! 100`,
# where the space after it is layout too: a comma there is a thousands separator.
_THIN_THOUSANDS = re.compile(r"(?<=\d),\\!\s*(?=\d)")
_NEGATIVE_SPACE = re.compile(r"(?<!\\)\\!")
_STYLE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle)(?![a-zA-Z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|°")
_PERCENT = re.compile(r"\\?%|\\percent(?![a-zA-Z])")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_DOLLAR_SIGN = re.compile(r"\\\$")
_THOUSANDS_COMMA = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?!\d|,\d)")
_THOUSANDS_SPACE = re.compile(r"(?<![\d.])\d{1,3}(?: \d{3})+(?![\d.])")
_BRACED_COMMA = re.compile(r"\{,\}")
_SPACE_AROUND_SYMBOLS = re.compile(r"\s*([^\w\\\s])\s*")
_SPACES = re.compile(r"\s+")
_NUMBER_WITH_UNIT = re.compile(
    r"^(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?|[-+]?\\frac\{\d+\}\{\d+\})"
    # Words are separated by mandatory whitespace: `(?:[a-z]{2,}\s*)+` would backtrack exponentially.
    r"\s*(?:\\%)?\s*[a-zA-Z]{2,}\.?(?:\s+[a-zA-Z]{2,}\.?)*\s*(?:\^\{?[23]\}?)?$"
)
_PLAIN_WORDS = re.compile(r"^[A-Za-z][A-Za-z '\-]*$")


def strip_delimiters(s: str) -> str:
  """Drop math delimiters and `\\boxed{}` wrappers around the whole answer, repeatedly."""
  while True:
    s = s.strip()
    before = s
    for open_, close in _DELIMITERS:
      if len(s) >= len(open_) + len(close) and s.startswith(open_) and s.endswith(close):
        s = s[len(open_) : len(s) - len(close)]
        break
    for cmd in _WRAPPERS:
      if s.startswith(cmd + "{"):
        group = balanced_group(s, len(cmd))
        if group and group[1] == len(s):
          s = group[0]
    if s == before:
      return s


def _replace_commands(s: str, commands: tuple[str, ...], keep_text: bool) -> tuple[str, bool]:
  """Replace `\\cmd{content}` for each cmd by its content (keep_text) or by a marker-free gap.

  Returns the new string and whether any text command held a non-conjunction word (a unit).
  """
  out = []
  i = 0
  dropped_words = False
  while True:
    hits = [(s.find(c + "{", i), c) for c in commands]
    hits = [h for h in hits if h[0] >= 0]
    if not hits:
      out.append(s[i:])
      return "".join(out), dropped_words
    pos, cmd = min(hits)
    group = balanced_group(s, pos + len(cmd))
    if group is None:
      out.append(s[i:])
      return "".join(out), dropped_words
    content, end = group
    out.append(s[i:pos])
    word = content.strip()
    if keep_text:
      out.append(content)
    elif word.lower() in _CONJUNCTIONS:
      out.append(",")
    else:
      out.append(" \x00" + content + "\x00 ")
      dropped_words = dropped_words or bool(word)
    i = end


def _drop_text(s: str) -> str:
  """Drop `\\text{}` words attached to math (units); keep them when the answer is only words."""
  marked, has_words = _replace_commands(s, _TEXT_COMMANDS, keep_text=False)
  if not has_words:
    return marked.replace("\x00", "")
  without = re.sub(r"\x00[^\x00]*\x00(?:\s*\^\s*\{?[23]\}?)?", " ", marked).strip(" ,")
  if re.search(r"[\d\\]|[a-zA-Z]\s*[=+\-*/^]", without) or re.fullmatch(r"[A-Za-z]", without):
    return without
  return marked.replace("\x00", "")


def normalize(answer: str) -> str:
  """A canonical spelling of an answer string; comparisons only ever see normalised strings."""
  s = strip_delimiters(answer)
  s = _STYLE.sub("", s)
  s = _FRAC_VARIANTS.sub("\\\\frac", s)
  s = _SIZING.sub("", s)
  s = _BRACED_COMMA.sub(",", s)
  s = _THIN_THOUSANDS.sub(",", s)
  s = _NEGATIVE_SPACE.sub("", s)
  s = _SPACING.sub(" ", s)
  s = _DEGREES.sub("", s)
  s = _DOLLAR_SIGN.sub("", s)
  s, _ = _replace_commands(s, _UNWRAP_COMMANDS, keep_text=True)
  s = _drop_text(s)
  s = _PERCENT.sub("\\\\%", s)
  s = _SPACES.sub(" ", s).strip()
  s = _THOUSANDS_SPACE.sub(lambda m: m.group(0).replace(" ", ""), s)
  s = _THOUSANDS_COMMA.sub(lambda m: m.group(0).replace(",", ""), s)
  s = s.rstrip(" .").strip().rstrip(",").strip()
  s = strip_delimiters(s)
  unit = _NUMBER_WITH_UNIT.match(s)
  if unit:
    s = unit.group("num") + ("\\%" if "\\%" in s else "")
  return _SPACE_AROUND_SYMBOLS.sub(r"\1", s)


def is_plain_words(s: str) -> bool:
  """True for answers that are words ("even", "no solution"), compared case-insensitively."""
  return bool(_PLAIN_WORDS.match(s)) and len(s.replace(" ", "")) > 1
