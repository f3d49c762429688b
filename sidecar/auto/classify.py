"""Features of a request, from what it IS: sizes, structure and a few word cues. Pure functions.

`features(shape)` turns a `Shape` (shapes.py: the request read per endpoint) into `Features`:

    chars, tokens   the text's length in characters, and an estimate of its tokens: ASCII
                    text at 3.5 characters a token (English runs about 4, code about 3.3, so
                    this errs high), other text at 3 UTF-8 bytes a token (one per CJK character)
    messages        conversation depth (system excluded)
    tools, tool_results, images, schema, schema_fields, reasoning, max_output   as read
    code            0-3: code pasted (a ``` fence anywhere, or syntax in the task), plus a
                    language or a coding verb in the task (2 for both, nothing pasted)
    math            0-8: proof, calculus, probability and puzzle words (2 each for the strong
                    ones, 1 for the others), maths symbols, maths phrases ("how many ways",
                    "prove that": 3), and word problems (3+ numbers and a quantity question)
    steps           an explicit ask to reason step by step ("think step by step")
    analysis        0-3: words asking for analysis, comparison, design or depth
    compose         0-2: words asking for a piece of writing (write, draft, email, essay ...)
    brief           words asking for brevity (short, brief, one word ...)

Only the task (the last user message) is searched, and only its ends, lowered once: its first
`WINDOW_HEAD` and last `WINDOW_TAIL` characters for code syntax, and for the words that say
what is asked, its first paragraph and its last short line (`_ask`: the instruction sits
before or after a long paste, and a pasted document's own words must not count as the ask).
So the cost stays flat however long the prompt (docs/auto.md has the figures). Words are
matched whole (punctuation to spaces, one split, set intersections: no regular expression runs
per request); phrases by substring. The ``` fence check runs over every text (a C-level scan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sidecar.auto.shapes import Shape

__all__ = ["Features", "features"]

WINDOW_HEAD = 1_000  # characters of the task searched for code syntax (without a fence)
WINDOW_TAIL = 400
INTENT_HEAD = 600  # characters of the task read for what is asked
INTENT_TAIL = 400
ASCII_CHARS_PER_TOKEN = 3.5
OTHER_BYTES_PER_TOKEN = 3.0

_PUNCTUATION = str.maketrans({c: " " for c in "!\"#$%&'()*,.:;<>?@[\\]`{|}~\t\n\r"})
# Syntax that is code in any text (matched as substrings of the task window).
_CODE_SYNTAX = ("def ", "class ", "import ", "#include", "=>", "();", "};", ") {", "){",
                "console.log", "print(", "return ", "const ", "function(", "select * from",
                "traceback (most recent call last)", "public static", "fn main", "</div>",
                "npm install", "pip install", "git commit")
_CODE_LANGUAGES = frozenset({
    "python", "javascript", "typescript", "java", "golang", "rust", "c++", "c#", "kotlin",
    "swift", "ruby", "php", "scala", "haskell", "bash", "shell", "sql", "html", "css", "react",
    "django", "flask", "fastapi", "node", "nodejs", "dockerfile", "kubernetes", "terraform",
    "regex", "json", "yaml", "api", "sdk", "git", "linux", "numpy", "pandas", "pytorch"})
_CODE_VERBS = frozenset({
    "refactor", "debug", "implement", "compile", "compiles", "deploy", "unittest", "pytest",
    "function", "method", "script", "program", "bug", "stacktrace", "exception", "segfault",
    "endpoint", "codebase", "repository", "repo", "migration", "async", "thread", "memory",
    "command", "query", "queries"})
_STRONG_MATH = frozenset({
    "prove", "proof", "theorem", "lemma", "corollary", "derive", "derivation", "integral",
    "integrate", "derivative", "differentiate", "induction", "eigenvalue", "eigenvalues",
    "combinatorics", "probability", "expectation", "variance", "modulo", "asymptotic",
    "recurrence", "irrational", "bijection", "isomorphic", "diophantine", "deduce",
    "deduction"})
_WEAK_MATH = frozenset({
    "equation", "equations", "inequality", "polynomial", "prime", "primes", "matrix",
    "determinant", "converge", "converges", "series", "sequence", "puzzle", "riddle", "logic",
    "minimize", "maximize", "optimal", "solve", "integer", "integers", "divisible",
    "factorial", "permutations", "combinations", "geometry", "triangle", "angle", "digits"})
_MATH_SYMBOLS = ("∫", "∑", "√", "≤", "≥", "≠", "π", "\\frac", "\\int", "\\sum", "^2", "^n",
                 "x^", "f(x)", "mod ", "∀", "∃")
_MATH_PHRASES = ("how many ways", "what is the probability", "solve for", "prove that",
                 "show that", "closed form")
_STEP_PHRASES = ("step by step", "step-by-step", "think carefully", "reason through",
                 "show your work", "show your reasoning", "think it through", "chain of thought",
                 "explain your reasoning", "explain the logic", "reason it out")
_QUANTITY = ("how many", "how much", "how long", "how far", "how fast", "what time",
             "at what", "how old")
_ANALYSIS = frozenset({
    "analyze", "analyse", "analysis", "compare", "contrast", "evaluate", "critique", "assess",
    "architecture", "design", "tradeoffs", "trade-offs", "strategy", "comprehensive",
    "in-depth", "thorough", "implications", "recommend", "recommendation", "pros", "cons",
    "risks", "plan", "detailed", "complete", "specification", "scalability", "distributed",
    "downtime", "rollback", "consistency", "idempotency", "microservices"})
_COMPOSE = frozenset({
    "write", "draft", "compose", "explain", "describe", "compare", "adapt", "create",
    "generate", "outline", "essay", "article", "post", "letter", "email", "story", "memo",
    "paragraphs", "summarize", "summarise", "discuss", "list", "rewrite", "translate"})
_BRIEF = frozenset({"short", "brief", "briefly", "single", "one-word", "quick", "quickly"})
_DIGITS = "0123456789"


@dataclass(frozen=True, slots=True)
class Features:
    chars: int = 0
    tokens: int = 0
    messages: int = 0
    tools: int = 0
    tool_results: int = 0
    images: int = 0
    schema: str | None = None
    schema_fields: int = 0
    reasoning: str | None = None
    max_output: int | None = None
    code: int = 0
    math: int = 0
    steps: bool = False
    analysis: int = 0
    compose: int = 0
    brief: bool = False


def features(shape: Shape) -> Features:
    chars = tokens = 0
    fence = False
    for text in shape.texts:
        size = len(text)
        chars += size
        if text.isascii():  # O(1) in CPython: a flag of the string object
            tokens += math.ceil(size / ASCII_CHARS_PER_TOKEN)
        else:
            tokens += math.ceil(len(text.encode()) / OTHER_BYTES_PER_TOKEN)
        # a single-character scan is memchr (2 µs for 300 KB); "```" alone costs 190 µs
        fence = fence or ("`" in text and "```" in text)
    task = shape.task
    if len(task) > WINDOW_HEAD + WINDOW_TAIL:
        task = task[:WINDOW_HEAD] + "\n" + task[-WINDOW_TAIL:]
    window = task.lower()
    ask = _ask(window)
    words = set(ask.translate(_PUNCTUATION).split())
    # 22 substring scans cost about 10 µs on this window: only when no fence said it already
    pasted = fence or sum(1 for s in _CODE_SYNTAX if s in window) >= 2
    code = (2 if pasted else 0) + (1 if words & _CODE_LANGUAGES or words & _CODE_VERBS else 0)
    if not pasted and words & _CODE_LANGUAGES and words & _CODE_VERBS:
        code = 2  # asked to write code in a named language, nothing pasted yet
    strong = len(words & _STRONG_MATH)
    weak = len(words & _WEAK_MATH)
    symbols = sum(1 for s in _MATH_SYMBOLS if s in ask)
    phrases = sum(1 for p in _MATH_PHRASES if p in ask)
    numbers = sum(1 for w in words if w[0] in _DIGITS)
    digits = sum(map(ask.count, _DIGITS)) if numbers else 0
    word_problem = numbers >= 3 and any(q in ask for q in _QUANTITY)
    math_score = min(8, 2 * min(strong, 2) + min(weak, 2) + min(symbols, 2)
                     + 3 * min(phrases, 1) + (2 if word_problem else 0)
                     + (1 if digits >= 6 else 0))
    return Features(
        chars=chars, tokens=tokens, messages=shape.messages, tools=shape.tools,
        tool_results=shape.tool_results, images=shape.images, schema=shape.schema,
        schema_fields=shape.schema_fields, reasoning=shape.reasoning,
        max_output=shape.max_output, code=min(code, 3), math=math_score,
        steps=any(p in ask for p in _STEP_PHRASES),
        analysis=min(3, len(words & _ANALYSIS)), compose=min(2, len(words & _COMPOSE)),
        brief=not words.isdisjoint(_BRIEF))


def _ask(task: str) -> str:
    """What is asked, around what is pasted: the task's first paragraph (up to a blank line,
    at most `INTENT_HEAD` characters) and its last line when it is short (at most
    `INTENT_TAIL`). A pasted document's own words would otherwise ask for its analysis."""
    if len(task) <= INTENT_HEAD + INTENT_TAIL:
        return task
    end = task.find("\n\n", 0, INTENT_HEAD)
    head = task[:end if end > 0 else INTENT_HEAD]
    start = task.rfind("\n", len(task) - INTENT_TAIL)
    return head if start < 0 else head + "\n" + task[start:]
