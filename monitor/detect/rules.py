"""Rules are data: load `rules/*.yaml`, validate every rule, report every error with file:line.

A rule file holds optional named `lists` (reusable value sets, as in falco) and a `rules`
sequence. Each rule names a `kind` from the registry in `monitor.detect.kinds`; the kind
declares its own parameters, so adding a kind never touches the loader. No expression language
and no `eval`: predicates are `{field: {op: value}}` mappings over a fixed set of fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from monitor.core.errors import KeywatchError
from monitor.core.findings import Severity, Signal

if TYPE_CHECKING:
    from monitor.detect.kinds import Kind

COMMON = {"id", "title", "kind", "severity", "signal", "description", "tags", "action",
          "exceptions", "cooldown_minutes", "enabled"}
REQUIRED = ("id", "title", "kind", "severity", "signal", "description", "action")


class RuleError(KeywatchError):
    """Every problem found in a rules directory, each as `file:line: what; fix`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} rule error(s):\n" + "\n".join(problems),
                         where=problems[0].split(":", 1)[0] if problems else "",
                         problems=problems)


# A rule file is at most this big and this deeply nested: the shipped ones are a few KiB and
# four levels deep; a file past either is a mistake or an attack, refused before it is parsed.
MAX_RULE_FILE_BYTES = 1 << 20
MAX_DEPTH = 64


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 1


def _compose(path: Path) -> yaml.Node | None:
    """The file's YAML tree, refusing what would crash the composer: nesting deeper than
    MAX_DEPTH (it recurses), text that is not UTF-8. Raises `ValueError` (`line: what; fix`).
    Aliases are bounded when the tree is expanded (`_node_to_py`)."""
    if not path.is_file():  # a FIFO or a device would block or never end
        raise ValueError("1: not a regular file; rule files are plain *.yaml files")
    with path.open("rb") as fh:
        data = fh.read(MAX_RULE_FILE_BYTES + 1)
    if len(data) > MAX_RULE_FILE_BYTES:
        raise ValueError(f"1: larger than {MAX_RULE_FILE_BYTES >> 20} MiB; split it into "
                         "several rule files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"{line}: not UTF-8 text (byte {exc.start}); save the file as "
                         "UTF-8") from None
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"{_line(event)}: nested more than {MAX_DEPTH} "
                                 "levels deep; a rule needs a handful")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return yaml.compose(text, Loader=yaml.SafeLoader)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    kind: str
    severity: Severity
    signal: Signal
    description: str
    action: str
    params: dict[str, Any]
    tags: tuple[str, ...] = ()
    exceptions: tuple[dict[str, str], ...] = ()
    cooldown_ms: int = 30 * 60_000
    where: str = ""  # file:line, for messages

    def excepted(self, account: str, key: str | None, group: dict[str, str]) -> bool:
        """Operators' hook: an exception matches when all its fields equal the finding's."""
        facts = {"account": account, "key": key or "", **group}
        return any(all(str(facts.get(k, "")) == str(v) for k, v in ex.items())
                   for ex in self.exceptions)


@dataclass
class _Doc:
    path: str
    lists: dict[str, list[Any]] = field(default_factory=dict)


# Aliases are allowed (the shipped rules name a value once and reuse it), but a few lines of
# aliases can expand to 10^9 values (billion laughs) or refer to themselves: the expansion
# is bounded in values and depth, and a cycle is refused.
MAX_VALUES = 100_000
MAX_ALIAS_DEPTH = 128


@dataclass
class _Expansion:
    values: int = 0
    open: set[int] = field(default_factory=set)  # ids of the collections being expanded


def _node_to_py(node: yaml.Node, exp: _Expansion | None = None, depth: int = 0) -> Any:
    """Compose tree -> python; mappings keep each key's line in `__lines__`. Raises
    `ValueError` (`line: what; fix`) past MAX_VALUES values, MAX_ALIAS_DEPTH levels or on a
    cycle."""
    exp = exp if exp is not None else _Expansion()
    exp.values += 1
    line = node.start_mark.line + 1
    if exp.values > MAX_VALUES:
        raise ValueError(f"{line}: its YAML aliases expand to more than {MAX_VALUES:,} values "
                         "(a billion-laughs file?); write the values out")
    if depth > MAX_ALIAS_DEPTH:
        raise ValueError(f"{line}: nested more than {MAX_ALIAS_DEPTH} levels deep through YAML "
                         "aliases; a rule needs a handful")
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in exp.open:
            raise ValueError(f"{line}: a YAML alias refers to the value it is part of, which "
                             "would never end; write the value out")
        exp.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [_node_to_py(v, exp, depth + 1) for v in node.value]
            out: dict[str, Any] = {}
            lines: dict[str, int] = {}
            for k, v in node.value:
                key = str(_node_to_py(k, exp, depth + 1))
                out[key] = _node_to_py(v, exp, depth + 1)
                lines[key] = k.start_mark.line + 1
            out["__lines__"] = lines
            out["__line__"] = line
            return out
        finally:
            exp.open.discard(id(node))
    return yaml.constructor.SafeConstructor().construct_object(node)


def strip_lines(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: strip_lines(x) for k, x in v.items() if k not in ("__lines__", "__line__")}
    if isinstance(v, list):
        return [strip_lines(x) for x in v]
    return v


def load_rules(rules_dir: str | Path) -> list[Rule]:
    """Load and validate every `*.yaml` under `rules_dir`; raise `RuleError` with all problems."""
    from monitor.detect.kinds import KINDS  # the registry imports this module's types

    d = Path(rules_dir)
    files = sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml"))
    problems: list[str] = []
    if not d.is_dir():
        raise RuleError([f"{d}: not a directory; pass the folder that holds rules/*.yaml"])
    if not files:
        raise RuleError([f"{d}: no *.yaml rule files found"])
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in files:
        try:
            node = _compose(path)
            data = _node_to_py(node) if node is not None else None
        except OSError as exc:
            problems.append(f"{path}:1: cannot read the file ({exc.strerror})")
            continue
        except ValueError as exc:
            problems.append(f"{path}:{exc}")
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            problems.append(f"{path}:{line}: not valid YAML ({getattr(exc, 'problem', exc)}); "
                            "fix the syntax")
            continue
        if node is None:
            continue
        if not isinstance(data, dict):
            problems.append(f"{path}:1: expected a mapping with `rules:` (and optional `lists:`)")
            continue
        extra = set(data) - {"rules", "lists", "__lines__", "__line__"}
        for k in sorted(extra):
            problems.append(f"{path}:{data['__lines__'][k]}: unknown top-level key {k!r}; "
                            "allowed: rules, lists")
        doc = _Doc(str(path), {k: strip_lines(v) for k, v in (data.get("lists") or {}).items()
                               if not k.startswith("__")})
        items = data.get("rules")
        if not isinstance(items, list):
            problems.append(f"{path}:{data['__line__']}: `rules:` must be a list of rules")
            continue
        for item in items:
            rule, errs = _build(item, doc, KINDS)
            problems.extend(errs)
            if rule is not None:
                if rule.id in seen:
                    problems.append(f"{rule.where}: duplicate rule id {rule.id!r} (first at "
                                    f"{seen[rule.id]}); ids must be unique")
                else:
                    seen[rule.id] = rule.where
                    rules.append(rule)
    if problems:
        raise RuleError(problems)
    return rules


def _build(item: Any, doc: _Doc, kinds: dict[str, Kind]) -> tuple[Rule | None, list[str]]:
    if not isinstance(item, dict):
        return None, [f"{doc.path}: each entry under `rules:` must be a mapping"]
    lines = item["__lines__"]
    here = f"{doc.path}:{item['__line__']}"

    def at(k: str) -> str:
        return f"{doc.path}:{lines.get(k, item['__line__'])}"

    errs = [f"{here}: missing required field {k!r}; add `{k}: ...`"
            for k in REQUIRED if k not in item]
    kind_name = item.get("kind")
    kind = kinds.get(kind_name) if isinstance(kind_name, str) else None
    if "kind" in item and kind is None:
        errs.append(f"{at('kind')}: unknown kind {kind_name!r}; known: {', '.join(sorted(kinds))}")
    allowed = COMMON | (set(kind.params) if kind else set())
    for k in item:
        if k.startswith("__") or k in allowed:
            continue
        hint = f"; parameters of {kind_name}: {', '.join(sorted(kind.params))}" if kind else ""
        errs.append(f"{at(k)}: unknown field {k!r}{hint}")
    sev = item.get("severity")
    if "severity" in item and sev not in {s.value for s in Severity}:
        errs.append(f"{at('severity')}: severity {sev!r} is not one of "
                    f"{', '.join(s.value for s in Severity)}")
    sig = item.get("signal")
    if "signal" in item and sig not in {s.value for s in Signal}:
        errs.append(f"{at('signal')}: signal {sig!r} is not one of "
                    f"{', '.join(s.value for s in Signal)}")
    for k in ("id", "title", "description", "action"):
        if k in item and (not isinstance(item[k], str) or not item[k].strip()):
            errs.append(f"{at(k)}: {k} must be a non-empty string")
    tags = item.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errs.append(f"{at('tags')}: tags must be a list of strings")
    exc = strip_lines(item.get("exceptions") or [])
    if not isinstance(exc, list) or not all(isinstance(e, dict) for e in exc):
        errs.append(f"{at('exceptions')}: exceptions must be a list of mappings such as "
                    "`- {key: grid-bot, ip: 203.0.113.7}`")
        exc = []
    cd = item.get("cooldown_minutes", 30)
    if not isinstance(cd, (int, float)) or isinstance(cd, bool) or cd < 0:
        errs.append(f"{at('cooldown_minutes')}: cooldown_minutes must be a number >= 0")
        cd = 30
    params: dict[str, Any] = {}
    if kind is not None:
        raw = {k: strip_lines(v) for k, v in item.items() if k in kind.params}
        params, perrs = kind.validate(raw, doc.lists)
        errs.extend(f"{at(k)}: {msg}" for k, msg in perrs)
    if errs or item.get("enabled", True) is False:
        return None, errs
    assert kind_name is not None and sev is not None and sig is not None  # validated above
    return Rule(
        id=item["id"], title=item["title"], kind=kind_name, severity=Severity(sev),
        signal=Signal(sig), description=item["description"].strip(), action=item["action"].strip(),
        params=params, tags=tuple(tags), exceptions=tuple(exc),
        cooldown_ms=int(cd * 60_000), where=here,
    ), []
