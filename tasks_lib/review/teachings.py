"""What reviewers teach stays: a proposal session that turns kept reviewer feedback into the repository's conventions.

The feedback comes from the store (`tasks_lib.store.teachings`); this module drafts what the proposal session is
asked to do (`proposal_instructions`, a pure function), and starts one from the review pages through the served
on-demand workflow (`start_served`). The CLI starts it through `agent-tasks run` itself. Either way it is a session
like any other: it ends at the review gate, and nothing is written to the repository without an accept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tasks_lib.domain.people import ROLES, Person
from tasks_lib.errors import AgentTasksError
from tasks_lib.store import Store
from tasks_lib.store.teachings import REMOTE, KeptFeedback, kept_feedback, repository_key

CONVENTIONS_FILE = "AGENTS.md"
# Other conventions files agents read (tasks_lib/agent/prompt.py), mentioned so the proposal does not repeat them.
OTHER_CONVENTIONS = ("CLAUDE.md", ".cursorrules", ".github/copilot-instructions.md", ".continue/rules")
PROPOSAL_AGENT = "default"  # the agent that writes the proposal: it edits files (the one taught may not)
# The on-demand workflow `agent-tasks up` serves (deployments/workflows.yaml): the review pages start proposals there.
SERVED_DEPLOYMENT = "agent-task/agent-task"
STARTING_ROLES = ROLES  # every role starts tasks (README: "What each role may do")
MAX_ITEMS = 60  # feedback items quoted, newest first
FEEDBACK_CHARS = 1500  # of one item's feedback
COMMENT_CHARS = 300  # of one line comment
COMMENTS_PER_ITEM = 10
INSTRUCTIONS_CAP = 48_000  # characters: the instructions travel as one command-line argument of `agent-tasks run`
RULE_WORDS = re.compile(
    r"\b(always|never|must|mustn't|should|shouldn't|don't|do not|avoid|prefer|make sure|every time|from now on|"
    r"in this (repo|repository|codebase|project))\b",
    re.IGNORECASE,
)
WORD = re.compile(r"[a-z0-9_]+")
STOP_WORDS = frozenset(
    "the and for with that this are was were you your our its not but all any can from have has had into use "
    "using please here there they them then than also just only when what which who why how add make don doesn "
    "isn".split()
)
SAME_POINT = 0.6  # share of content words two points have in common to count as the same point


class NoFeedback(AgentTasksError):
    """No reviewer feedback is kept for the repository (and agent) asked about: there is nothing to propose from."""


class ProposalNotStarted(AgentTasksError):
    """The review pages could not start a proposal; the message says why."""


def no_feedback_line(repository: str, agent: str | None = None, hint: bool = True) -> str:
    """The one line saying there is nothing to propose from, how feedback gets kept (and where to see what is)."""
    which = f" and agent {agent}" if agent else ""
    return (
        f"no reviewer feedback kept for {repository}{which} yet: it is kept when a reviewer requests changes, "
        "rejects or retries with feedback or line comments"
        + (" (agent-tasks rules list shows what is kept)" if hint else "")
    )


def stated_as_rule(text: str) -> bool:
    """True when a reviewer worded feedback as a rule ("always …", "never …", "don't …", "in this repo …")."""
    return bool(RULE_WORDS.search(text))


def points(item: KeptFeedback) -> list[str]:
    """The separate points of one item: its feedback's sentences and list items, and its line comments' bodies."""
    found = []
    for line in item.feedback.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line).strip()
        found += [s.strip() for s in re.split(r"(?<=[.!?;])\s+", line) if s.strip()]
    found += [str(c.get("body") or "").strip() for c in item.comments if str(c.get("body") or "").strip()]
    return found


def _words(point: str) -> frozenset[str]:
    return frozenset(w for w in WORD.findall(point.lower()) if len(w) > 2 and w not in STOP_WORDS)


@dataclass(frozen=True)
class Recurring:
    """A point said in more than one session: its newest wording and the sessions that said it (newest first)."""

    text: str
    session_ids: tuple[str, ...]


def recurring_points(items: Sequence[KeptFeedback]) -> list[Recurring]:
    """The points said in more than one session, most often first: two points are the same when most of their
    content words are (so "Add type hints." and "Please add type hints to new functions" are one point)."""
    groups: list[tuple[frozenset[str], str, list[str]]] = []  # words, newest wording, sessions
    for item in items:  # newest first: a group keeps its newest wording
        for point in points(item):
            words = _words(point)
            if not words:
                continue
            for group_words, _, sessions in groups:
                shared = len(words & group_words) / min(len(words), len(group_words))
                if shared >= SAME_POINT and (min(len(words), len(group_words)) > 1 or words == group_words):
                    if item.session_id not in sessions:
                        sessions.append(item.session_id)
                    break
            else:
                groups.append((words, point, [item.session_id]))
    found = [Recurring(text, tuple(sessions)) for _, text, sessions in groups if len(sessions) > 1]
    return sorted(found, key=lambda r: -len(r.session_ids))


def repository_agent_files(items: Sequence[KeptFeedback]) -> dict[str, str]:
    """The agents of these items that come from the repository itself, and the file each is defined in."""
    found: dict[str, str] = {}
    for item in items:
        if item.agent_source and item.agent_source.startswith("repository:"):
            found.setdefault(item.agent, item.agent_source.removeprefix("repository:"))
    return found


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + f" […{len(text) - limit} more characters]"


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.splitlines() or [""]]


def quote_item(number: int, item: KeptFeedback) -> list[str]:
    """One feedback item as the instructions quote it: a heading naming the session, then its words and comments."""
    when = item.decided_at.strftime("%Y-%m-%d %H:%M UTC")
    rule = " — stated as a rule" if any(stated_as_rule(p) for p in points(item)) else ""
    lines = [
        f"### {number}. session {item.session_id[:8]} (agent {item.agent}, iteration {item.iteration}): "
        f"{item.decision_words()} by {item.who()}, {when}{rule}"
    ]
    if item.feedback:
        lines += _quoted(_clip(item.feedback, FEEDBACK_CHARS))
    if item.comments:
        lines += [""] if item.feedback else []
        lines.append("Line comments:")
        for c in item.comments[:COMMENTS_PER_ITEM]:
            lines += _quoted(
                _clip(f"{c.get('path')}:{c.get('line')}: {str(c.get('body') or '').strip()}", COMMENT_CHARS)
            )
        if len(item.comments) > COMMENTS_PER_ITEM:
            lines.append(f"({len(item.comments) - COMMENTS_PER_ITEM} more line comments left out)")
    return lines


def proposal_instructions(
    items: Sequence[KeptFeedback],
    repository: str,
    agents_md: bool | None = None,
    other_conventions: Sequence[str] = (),
    agent: str | None = None,
) -> str:
    """What a proposal session is asked to do: update the repository's conventions file (``AGENTS.md``: edit it when
    ``agents_md`` says it exists, create it when it does not, either when unknown) with the points of the kept
    feedback ``items`` (newest first) that recur or that a reviewer stated as a rule, quoting every item with its
    session id; a repository's own agent's file is named as the place for rules about that agent only."""
    if not items:
        raise NoFeedback(no_feedback_line(repository, agent))
    sessions = list(dict.fromkeys(i.session_id for i in items))
    recurring = recurring_points(items)
    where = {
        True: f"`{CONVENTIONS_FILE}` at the repository's root (it exists: edit it and keep what it says)",
        False: f"`{CONVENTIONS_FILE}` at the repository's root (there is none yet: create it, with a one-line title)",
        None: f"`{CONVENTIONS_FILE}` at the repository's root (edit it, or create it if there is none)",
    }[agents_md]
    whose = f" on the work of agent {agent}" if agent else ""
    lines = [
        f"Propose conventions from reviewer feedback: update {CONVENTIONS_FILE} with what reviewers keep asking for.",
        "",
        f"Reviewers of agent sessions on {repository}{whose} gave the feedback quoted below ({len(items)} items from "
        f"{len(sessions)} sessions) when they requested changes, rejected or retried. Make it part of the "
        "repository's conventions, so the agents that work here are told before a reviewer has to say it again:",
        "",
        "1. Take the points that recur (said in more than one session"
        + ('; those found so far are listed under "Said in more than one session"' if recurring else "")
        + ') and the points a reviewer stated as a rule ("always …", "never …", "don\'t …"). Leave out remarks '
        "about one change only (a value, a name, a typo on one line).",
        f"2. Write each as a short, concrete rule in the imperative, in {where}. Do not repeat a rule the file "
        'already has (sharpen it instead); put the new ones under a heading such as "## From code review".',
    ]
    step = 3
    for name, path in repository_agent_files(items).items():
        lines.append(
            f"{step}. Agent {name} comes from this repository (`{path}`): a rule about that agent's work only "
            f"belongs in that file (its `rules` or its prompt, keeping the file's format), not in {CONVENTIONS_FILE}."
        )
        step += 1
    if other_conventions:
        listed = ", ".join(f"`{p}`" for p in other_conventions)
        lines.append(f"{step}. The repository also has {listed}: agents read those too; do not copy their rules.")
        step += 1
    lines += [
        f"{step}. Change nothing else: no code, no tests, no other files.",
        f"{step + 1}. In your summary, list each rule you wrote with the session ids (8 characters) of the feedback "
        "it comes from, and the points you left out and why.",
        "",
        "A person reviews this session like any other: nothing you write lands before they accept it.",
    ]
    if recurring:
        lines += ["", "## Said in more than one session", ""]
        lines += [
            f'- "{_clip(r.text, COMMENT_CHARS)}" — sessions {", ".join(s[:8] for s in r.session_ids)}'
            for r in recurring
        ]
    lines += ["", "## The feedback, newest first", ""]
    shown = 0
    for number, item in enumerate(items[:MAX_ITEMS], 1):
        quoted = quote_item(number, item)
        if sum(len(line) + 1 for line in lines + quoted) > INSTRUCTIONS_CAP - 200:
            break
        lines += [*quoted, ""]
        shown = number
    if shown < len(items):
        lines.append(
            f"({len(items) - shown} older items left out; `agent-tasks rules list --repo {repository}` shows them all)"
        )
    return "\n".join(lines).strip() + "\n"


def conventions_present(read: Callable[[str], str | None]) -> tuple[bool, list[str]]:
    """Whether the repository has ``AGENTS.md``, and which other conventions files it has, given a reader of its
    files at the branch to start from (None when absent; see `tasks_lib.session.preflight.repository_reader`)."""
    return read(CONVENTIONS_FILE) is not None, [p for p in OTHER_CONVENTIONS if read(p) is not None]


@dataclass(frozen=True)
class Proposal:
    """A proposal ready to start: the repository to run on, the instructions, and the feedback they quote."""

    repository: str
    instructions: str
    items: tuple[KeptFeedback, ...]

    def sessions(self) -> list[str]:
        """The sessions the quoted feedback comes from, newest first."""
        return list(dict.fromkeys(i.session_id for i in self.items))


def run_address(repository: str) -> str:
    """Where a proposal runs: a remote address as given, a local path made absolute (stored paths may be relative)."""
    text = repository.strip()
    return text if REMOTE.match(text) and not text.lower().startswith("file://") else repository_key(text)


def draft_proposal(
    store: Store, repository: str, agent: str | None = None, branch: str | None = None, settings=None
) -> Proposal:
    """The proposal for ``repository`` (and only ``agent``'s feedback, when given): its feedback, whether it has
    conventions files (read at ``branch`` without a checkout; unknown when it cannot be read, and the run says
    why), and the instructions. NoFeedback when nothing is kept for it."""
    items = kept_feedback(store, repository=repository, agent=agent)
    address = run_address(repository)
    if not items:
        raise NoFeedback(no_feedback_line(repository, agent))
    agents_md: bool | None = None
    others: list[str] = []
    try:
        from tasks_lib.config import load_settings
        from tasks_lib.session.preflight import repository_reader

        agents_md, others = conventions_present(repository_reader(address, branch, settings or load_settings()))
    except (AgentTasksError, OSError):  # not readable here: the run checks the repository and says why
        pass
    return Proposal(address, proposal_instructions(items, address, agents_md, others, agent), tuple(items))


def start_refusal(person: Person | None, team: bool) -> str | None:
    """Why this person may not start a proposal from the review pages (None: they may). In team mode only a
    signed-in person whose role starts tasks may; in single-user mode anyone who reaches the pages may."""
    if not team:
        return None
    if person is None:
        return "sign in first: in team mode only a person of this store may start a session"
    if person.role not in STARTING_ROLES:
        return f"{person.name} ({person.role}) may not start sessions"
    return None


def start_served(store: Store, proposal: Proposal, person: str | None, deployment: str = SERVED_DEPLOYMENT) -> str:
    """Start the proposal as a run of the served on-demand workflow (the one `agent-tasks up` serves) and return
    its session's id; ``person`` is recorded as who started it.

    The session is recorded before any worker can take the run: the run is created far in the future, its session
    written (the flow adopts a pending session of its own run), then the run is made due. ProposalNotStarted when
    the workflow is not served or the Prefect API refuses.
    """
    from datetime import timedelta

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Scheduled

    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.domain.session import SessionStatus
    from tasks_lib.security.secrets import Redactor
    from tasks_lib.store import utcnow
    from tasks_lib.store.people import set_started_by

    request = TaskRequest(repository=proposal.repository, instructions=proposal.instructions, agent=PROPOSAL_AGENT)
    data = request.model_dump(mode="json", exclude_defaults=True)  # the run's parameter, as a workflow's would be
    try:
        client = get_client(sync_client=True)
    except ValueError as exc:  # no Prefect API where the pages run
        raise ProposalNotStarted(str(exc).split(". ")[0].lower()) from None
    with client:
        try:
            served = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise ProposalNotStarted(
                f"the on-demand workflow {deployment} is not served here (agent-tasks up serves it)"
            ) from None
        except httpx.HTTPError as exc:
            raise ProposalNotStarted(f"the Prefect API cannot be reached ({type(exc).__name__}: {exc})") from None
        held = Scheduled(scheduled_time=utcnow() + timedelta(days=365))
        run = client.create_flow_run_from_deployment(served.id, parameters={"request": data}, state=held)
        session_id = store.create_session(Redactor.from_env().deep(data), flow_run_id=str(run.id), workflow=served.name)
        try:
            if person:
                set_started_by(store, session_id, person)
            client.set_flow_run_state(run.id, Scheduled(), force=True)
        except Exception as exc:  # the run never became due: take it back and end its session saying why
            client.delete_flow_run(run.id)
            reason = f"its run could not be started: {type(exc).__name__}: {exc}"
            store.transition(session_id, SessionStatus.failed, reason, [SessionStatus.pending], by="review-pages")
            raise ProposalNotStarted(reason) from exc
    return session_id
