#!/usr/bin/env python3
"""make check: every log line of the module carries a message ID listed in docs/messages.md.

A log call is ap_log_error/perror/rerror/cerror (and ap_log_error_) in mod_acme.c and httpd/,
acme_worker_log in src/, and any function that passes an ID from its callers on to one of them
(its own log call is marked with the comment `msgid: from caller`). Such a call has an ID when
its arguments hold a literal "ACMEnnnnn: " or a macro defined as "ACMEnnnnn", or a variable the
same function assigned text with an ID to. The test fails when
  - a log call has none,
  - one ID is written at two places in the code (two messages sharing it),
  - an ID in the code is missing from docs/messages.md, or the page lists one the code lacks,
  - an old-style ID (ACME1501, [ACME-P001]) is left.
ACME_MSGID_TOP may name another tree (the test of this test uses it).
"""
import glob
import os
import re
import sys

TOP = os.environ.get("ACME_MSGID_TOP") or os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))
LOG_FUNCS = {"ap_log_error", "ap_log_perror", "ap_log_rerror", "ap_log_cerror", "ap_log_error_",
             "acme_worker_log"}
ID = re.compile(r"ACME\d{5}")
OLD_ID = re.compile(r"\bACME\d{4}\b|\[ACME-P\d+\]")


def strip_comments(text):
    """Comments and string contents kept apart: comments become blanks, offsets stay."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text[i] in "\"'":
            q, j = text[i], i + 1
            while j < n and text[j] != q:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def call_end(code, open_paren):
    depth = 0
    for j in range(open_paren, len(code)):
        if code[j] == "(":
            depth += 1
        elif code[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def statement_end(code, pos):
    """The end of the statement at pos: its ';' outside strings and parentheses."""
    depth, j, n = 0, pos, len(code)
    while j < n:
        ch = code[j]
        if ch == '"':
            j += 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == ";" and depth <= 0:
            return j + 1
        j += 1
    return n


def function_span(code, pos):
    """The body of the function around pos: from its '{' at column 0 to pos."""
    start = code.rfind("\n{", 0, pos)
    return start + 1 if start >= 0 else 0


def function_name(code, pos):
    start = function_span(code, pos)
    head = code[max(0, start - 400):start]
    names = re.findall(r"^[a-z][\w \t*]*?\b([a-z_][a-z0-9_]*)\s*\(", head, re.M)
    return names[-1] if names else None


def load():
    files = {}
    for pattern in ("mod_acme.c", "httpd/*.[ch]", "src/*.[ch]"):
        for path in sorted(glob.glob(os.path.join(TOP, pattern))):
            with open(path, encoding="utf-8") as f:
                raw = f.read()
            files[os.path.relpath(path, TOP)] = (raw, strip_comments(raw))
    return files


def id_macros(files):
    macros = {}
    for rel, (_raw, code) in files.items():
        for m in re.finditer(r'^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+"(ACME\d{5})', code, re.M):
            macros[m.group(1)] = (m.group(2), rel)
    return macros


def has_id(text, macros):
    return ID.search(text) or any(re.search(rf"\b{name}\b", text) for name in macros)


def log_calls(files, funcs):
    """(file, line, call text, function around it, exempt) for every log call."""
    calls = []
    pat = re.compile(r"\b(" + "|".join(sorted(funcs, key=len, reverse=True)) + r")\s*\(")
    for rel, (raw, code) in files.items():
        if not rel.endswith(".c"):
            continue
        for m in pat.finditer(code):
            line_start = code.rfind("\n", 0, m.start()) + 1
            line = code[line_start:m.start()]
            if not line.strip() == "" and not re.search(r"[=(,!?:]|return\s*$|&&|\|\|", line):
                continue                    # a definition or declaration, not a call
            if line_start == m.start() and not line.strip():
                if re.match(r"\w+\s*\([^;]*\)\s*\n\{", code[m.start():m.start() + 400]):
                    continue
            end = call_end(code, m.end() - 1)
            before = raw[raw.rfind("\n", 0, line_start - 1) + 1:line_start]
            exempt = "msgid: from caller" in raw[m.start():end] + before
            calls.append((rel, code.count("\n", 0, m.start()) + 1, code[m.start():end],
                          code, m.start(), exempt))
    return calls


def assigned_with_id(code, pos, call, macros):
    body = code[function_span(code, pos):pos]
    for var in set(re.findall(r"\b([a-z_][a-z0-9_]*)\b", call)):
        for m in re.finditer(rf"\b{var}\s*=[^=]", body):
            stmt = body[m.start():statement_end(body, m.start())]
            if has_id(stmt, macros):
                return True
    return False


def main():
    files = load()
    macros = id_macros(files)
    problems = []
    funcs = set(LOG_FUNCS)
    while True:                                 # wrappers that take the ID from their callers
        calls = log_calls(files, funcs)
        wrappers = {function_name(code, pos) for (_f, _l, _c, code, pos, ex) in calls if ex}
        wrappers.discard(None)
        if wrappers <= funcs:
            break
        funcs |= wrappers
    for rel, line, call, code, pos, exempt in calls:
        if exempt or has_id(call, macros) or assigned_with_id(code, pos, call, macros):
            continue
        problems.append(f"{rel}:{line}: log call without a message ID: "
                        f"{' '.join(call.split())[:90]}")
    # Without APLOG_USE_MODULE(acme) a file's lines obey the global LogLevel, not `acme:`.
    for rel in sorted({c[0] for c in calls}):
        if rel.endswith(".c") and rel != "mod_acme.c" and not rel.startswith("src/") \
                and "APLOG_USE_MODULE(acme)" not in files[rel][1]:
            problems.append(f"{rel}: logs without APLOG_USE_MODULE(acme); its lines would not "
                            "follow LogLevel acme:...")
    seen = {}
    for rel, (_raw, code) in files.items():
        for m in OLD_ID.finditer(code):
            problems.append(f"{rel}:{code.count(chr(10), 0, m.start()) + 1}: old-style message "
                            f"ID {m.group(0)}: use ACME + 5 digits")
        for m in ID.finditer(code):
            line = code[code.rfind("\n", 0, m.start()) + 1:m.start()]
            if re.match(r"\s*#\s*define\b", line):
                continue                        # the ID's uses are the macro's uses
            where = f"{rel}:{code.count(chr(10), 0, m.start()) + 1}"
            seen.setdefault(m.group(0), []).append(where)
        for name, (msg_id, _defined) in macros.items():
            for m in re.finditer(rf"\b{name}\b", code):
                line = code[code.rfind("\n", 0, m.start()) + 1:m.start()]
                if not re.match(r"\s*#\s*define\b", line):
                    where = f"{rel}:{code.count(chr(10), 0, m.start()) + 1}"
                    seen.setdefault(msg_id, []).append(where)
    for msg_id, places in sorted(seen.items()):
        if len(places) > 1:
            problems.append(f"{msg_id} is used by {len(places)} messages: {', '.join(places)} "
                            "(give each its own ID)")
    doc_path = os.path.join(TOP, "docs", "messages.md")
    doc = open(doc_path, encoding="utf-8").read() if os.path.exists(doc_path) else ""
    listed = re.findall(r"^\|\s*`?(ACME\d{5})`?\s*\|", doc, re.M)
    for msg_id in sorted(set(listed)):
        if listed.count(msg_id) > 1:
            problems.append(f"docs/messages.md lists {msg_id} {listed.count(msg_id)} times")
    for msg_id in sorted(set(seen) - set(listed)):
        problems.append(f"{msg_id} ({seen[msg_id][0]}) is not in docs/messages.md")
    for msg_id in sorted(set(listed) - set(seen)):
        problems.append(f"docs/messages.md lists {msg_id}, which no code uses")
    if problems:
        print("message IDs (docs/messages.md, issue 18):")
        print("\n".join(problems))
        return 1
    print(f"message IDs: {len(calls)} log calls, {len(seen)} IDs, all in docs/messages.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
