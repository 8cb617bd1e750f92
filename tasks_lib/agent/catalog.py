"""Where agents come from: a name looked up in the repository, the user's agents and the built-ins.

An agent is named by its file's stem or its `name` field, case-insensitively. Looked up in this order: a
path given by the user, the repository's `.agent-tasks/agents/`, `.continue/agents/`, `.claude/agents/`,
`.github/agents/`, the user's `~/.agent-tasks/agents/`, then the built-in agents; the first place with a
match wins, and two matching files in that place are an error.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from tasks_lib.agent.files import agent_stem, parse_agent_file, read_agent_file, split_front_matter
from tasks_lib.agent.formats import FORMAT_DIRS, FORMAT_LABELS, FormatName, close_match
from tasks_lib.agent.spec import AgentFileError, AgentSpec

REPO_AGENT_DIRS = tuple(folder for folder, _ in FORMAT_DIRS)
# Reads a repository file's text (None when absent); given a folder, it answers what `git show REV:folder`
# prints (the names in it), which is how the agent folders are listed (preflight.repository_reader).
RepoReader = Callable[[str], "str | None"]


def builtin_agent_names() -> list[str]:
    """Names of the agents shipped with the package."""
    files = resources.files("tasks_lib.builtin_agents").iterdir()
    return sorted(p.name.removesuffix(".md") for p in files if p.name.endswith(".md"))


def user_agents_dir() -> Path:
    """The user's own agents: ``$AGENT_TASKS_HOME/agents`` (default ``~/.agent-tasks/agents``)."""
    from tasks_lib.config import load_settings

    return load_settings().home / "agents"


def looks_like_path(ref: str) -> bool:
    """True when an agent reference names a file rather than an agent."""
    return ref.endswith(".md") or "/" in ref or ref.startswith(("~", "."))


class Candidate(BaseModel):
    """An agent file that can be named: where it is, its stem and `name` field, its text."""

    source: str
    place: str  # the folder it was found in, as shown in messages
    stem: str
    name: str | None = None
    fmt: FormatName = "agent-tasks"
    text: str
    trusted: bool
    in_repository: bool = False

    def matches(self, ref: str) -> bool:
        """True when ``ref`` names this file: its stem or its `name` field, case-insensitively."""
        key = ref.strip().lower()
        return key == self.stem.lower() or (self.name is not None and key == self.name.strip().lower())

    def label(self) -> str:
        """How the agent is shown in a list of names: the stem, and the `name` field when it differs."""
        if self.name is None or self.name.strip().lower() == self.stem.lower():
            return self.stem
        return f"{self.stem} ({self.name!r})"

    def parse(self) -> AgentSpec:
        """The agent as it will be used (AgentFileError when the file is wrong)."""
        return parse_agent_file(self.text, self.source, trusted=self.trusted, fmt=self.fmt)


def _name_field(text: str, source: str) -> str | None:
    """The `name` field of an agent file, or None (also when its front matter cannot be read)."""
    try:
        name = split_front_matter(text, source)[0].get("name")
    except AgentFileError:
        return None
    return name if isinstance(name, str) and name.strip() else None


def _candidate(
    text: str, source: str, place: str, fmt: FormatName, trusted: bool, in_repository: bool, stem: str | None = None
) -> Candidate:
    """A Candidate for a file's text (its stem from ``source`` unless given)."""
    return Candidate(
        source=source,
        place=place,
        stem=stem or agent_stem(source),
        name=_name_field(text, source),
        fmt=fmt,
        text=text,
        trusted=trusted,
        in_repository=in_repository,
    )


def _tree_names(listing: str | None, folder: str) -> list[str]:
    """The file names in a folder, from what `git show REV:folder` prints for a tree (None or a file: none)."""
    if not listing:
        return []
    lines = listing.split("\n")
    if not (lines[0].startswith("tree ") and lines[0].rstrip("/").endswith(f":{folder}")):
        return []
    return [line for line in lines[2:] if line and not line.endswith("/")]


def repo_agent_files(repo: RepoReader) -> list[str]:
    """The agent files in a repository's agent folders, in lookup order (folders given by REPO_AGENT_DIRS).

    The reader is asked for each folder; given a folder, `git show` answers with the names in it.
    """
    files = []
    for folder in REPO_AGENT_DIRS:
        files += [f"{folder}/{name}" for name in sorted(_tree_names(repo(folder), folder)) if name.endswith(".md")]
    return files


def candidate_groups(repo: RepoReader | None) -> list[list[Candidate]]:
    """Every agent file that can be named, one group per place, in lookup order."""
    groups: list[list[Candidate]] = []
    if repo is not None:
        files = repo_agent_files(repo)
        for folder, fmt in FORMAT_DIRS:
            group = []
            for rel in (f for f in files if f.startswith(f"{folder}/")):
                text = repo(rel)
                if text is not None:
                    group.append(_candidate(text, f"repository:{rel}", f"repository:{folder}/", fmt, False, True))
            groups.append(group)
    personal = user_agents_dir()
    group = []
    for path in sorted(personal.glob("*.md")) if personal.is_dir() else []:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # unreadable: named by its path, read_agent_file says why
        group.append(_candidate(text, str(path), f"{personal}/", "agent-tasks", True, False))
    groups.append(group)
    builtins = resources.files("tasks_lib.builtin_agents")
    groups.append(
        [
            _candidate(
                builtins.joinpath(f"{n}.md").read_text(encoding="utf-8"),
                f"built-in:{n}",
                "the built-ins",
                "agent-tasks",
                True,
                False,
                stem=n,
            )
            for n in builtin_agent_names()
        ]
    )
    return groups


def _no_such_agent(ref: str, groups: list[list[Candidate]], searched_repo: bool) -> AgentFileError:
    """The error for a name no file matches: where we looked, the names there are, the closest one."""
    everything = [c for group in groups for c in group]
    labels = list(dict.fromkeys(c.label() for c in everything))
    keys = [k for c in everything for k in (c.stem, c.name) if k]
    guess = close_match(ref, keys, cutoff=0.6)
    places = "the repository's " + ", ".join(f"{d}/" for d in REPO_AGENT_DIRS) + ", " if searched_repo else ""
    return AgentFileError(
        f"{ref}: no such agent in {places}{user_agents_dir()}, or the built-ins; agents: {', '.join(labels)}"
        + (f"; did you mean {guess}?" if guess else "")
    )


def resolve(ref: str, groups: list[list[Candidate]], searched_repo: bool = True) -> Candidate:
    """The one file ``ref`` names: the first place with a match wins; two matches there are an error."""
    for group in groups:
        found = [c for c in group if c.matches(ref)]
        if len(found) > 1:
            raise AgentFileError(
                f"{ref}: more than one agent file in {found[0].place} matches by file name or `name` field: "
                f"{', '.join(c.source for c in found)}; rename one, or pass the file's path"
            )
        if found:
            return found[0]
    raise _no_such_agent(ref, groups, searched_repo)


def find_agent(ref: str, repo: RepoReader | None = None, shadow_builtins: bool = False) -> AgentSpec:
    """The agent ``ref``: a path, or a name looked up in the repository, the user's agents, then the built-ins.

    A repository's agent file may not replace a built-in agent of the same name unless
    ``shadow_builtins`` allows it.
    """
    if looks_like_path(ref):
        return read_agent_file(Path(ref).expanduser())
    found = resolve(ref, candidate_groups(repo), searched_repo=repo is not None)
    builtin = next((n for n in builtin_agent_names() if n == ref.strip().lower()), None)
    if found.in_repository and builtin and not shadow_builtins:
        raise AgentFileError(
            f"{found.source} would replace the built-in agent '{builtin}'; rename it, or allow it with "
            "shadow_builtins: true in the workflow (--shadow-builtins on the command line)"
        )
    return found.parse()


class CatalogRow(BaseModel):
    """One agent file as `agents list` shows it: how to name it, what it is, how it was read."""

    name: str
    source: str
    format: str
    description: str = ""
    agent_name: str | None = None  # the `name` field, when it differs from the file's stem
    ignored: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)  # a name that matches two files in one place
    error: str | None = None


def _reach(candidate: Candidate, groups: list[list[Candidate]]) -> tuple[list[str], list[str]]:
    """(notes, conflicts) on naming a file by its stem or `name` field: another file wins, or two files match."""
    notes, conflicts = [], []
    for key in dict.fromkeys(k for k in (candidate.stem, candidate.name) if k):
        try:
            winner = resolve(key, groups)
        except AgentFileError as exc:
            conflicts.append(str(exc))
            continue
        if winner is not candidate:
            notes.append(f"--agent {key!r} finds {winner.source} instead")
    if candidate.in_repository and candidate.stem.lower() in builtin_agent_names():
        notes.append(
            f"replaces the built-in agent '{candidate.stem.lower()}' only where the run allows it (shadow_builtins)"
        )
    return notes, conflicts


def name_conflicts(groups: list[list[Candidate]], repository_only: bool = False) -> list[str]:
    """The errors of names (stems and `name` fields) that match two files in the place where they are found."""
    conflicts: list[str] = []
    for candidate in (c for group in groups for c in group if c.in_repository or not repository_only):
        conflicts += [c for c in _reach(candidate, groups)[1] if c not in conflicts]
    return conflicts


def agent_catalog(repo: RepoReader | None = None) -> list[CatalogRow]:
    """Every agent file that can be named (the repository's, the user's, the built-ins), in lookup order."""
    groups = candidate_groups(repo)
    rows = []
    for candidate in (c for group in groups for c in group):
        notes, conflicts = _reach(candidate, groups)
        row = CatalogRow(
            name=candidate.stem,
            source=candidate.source,
            format=FORMAT_LABELS[candidate.fmt],
            notes=notes,
            conflicts=conflicts,
        )
        if candidate.name and candidate.name.strip().lower() != candidate.stem.lower():
            row.agent_name = candidate.name
        try:
            spec = candidate.parse()
        except AgentFileError as exc:
            row.error = str(exc)
        else:
            row.description, row.ignored, row.notes = spec.description, spec.ignored_fields, spec.file_notes + row.notes
        rows.append(row)
    return rows
