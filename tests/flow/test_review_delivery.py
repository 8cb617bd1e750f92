"""Where an accepted change goes: pushed to a remote's work branch, merged into the base (fast-forward, a merge
commit, or refused when the base moved in a conflicting way), opened as a pull request; and a delivery that cannot
reach its target, which leaves the session waiting for review with a notice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import Background, decide, wait_for_review

FINISH = calls(tool("finish", summary="done"))


@pytest.fixture
def origin(repo, tmp_path) -> Path:
    """A bare repository standing in for a remote."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    return bare


def test_accept_pushes_the_work_branch_to_a_remote_and_leaves_its_base_alone(origin, scripted, store):
    scripted([calls(tool("write_file", path="remote.txt", content="r\n")), FINISH])
    main_before = git(origin, "rev-parse", "main")
    run = Background(f"file://{origin}", "Remote change")
    decide(wait_for_review(store, "Remote change", since=run.started), "accept")
    row = store.get_session(run.join().session_id)
    assert row.status == "accepted" and "in the remote" in row.delivered_to
    assert git(origin, "rev-parse", row.work_branch) == row.delivered_commit
    assert git(origin, "rev-parse", "main") == main_before


def test_merge_when_configured_fast_forwards_the_base(origin, scripted, store):
    scripted([calls(tool("write_file", path="merged.txt", content="m\n")), FINISH])
    run = Background(f"file://{origin}", "Merge me", on_accept="merge")
    decide(wait_for_review(store, "Merge me", since=run.started), "accept")
    row = store.get_session(run.join().session_id)
    assert row.status == "accepted" and "fast-forward" in row.delivered_to
    assert git(origin, "rev-parse", "main") == row.delivered_commit


def test_merge_is_refused_when_the_base_moved_in_a_conflicting_way(origin, scripted, store, tmp_path):
    scripted(
        [
            calls(tool("edit_file", path="README.md", old="Hello world.", new="Hello agents.")),
            FINISH,
            calls(tool("edit_file", path="README.md", old="Hello world.", new="Hi.")),
            FINISH,
        ]
    )
    run = Background(f"file://{origin}", "Edit readme", on_accept="merge")
    row = wait_for_review(store, "Edit readme", since=run.started)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    (other / "README.md").write_text("# Demo\n\nHello humans.\n")
    git(other, "commit", "-qam", "conflicting change")
    git(other, "push", "-q", "origin", "main")
    moved = git(origin, "rev-parse", "main")

    decide(row, "accept")
    again = wait_for_review(store, "Edit readme", after_key=row.review_key, since=run.started)
    assert again.status_reason.startswith("accept failed: merge refused: main moved to")
    assert "README.md" in again.status_reason
    assert git(origin, "rev-parse", "main") == moved
    decide(again, "reject")
    assert run.join().status.value == "rejected"


def test_merge_over_a_moved_base_without_conflict_makes_a_merge_commit(repo, scripted, store):
    scripted([calls(tool("write_file", path="mine.txt", content="mine\n")), FINISH])
    run = Background(repo, "Add mine", on_accept="merge")
    row = wait_for_review(store, "Add mine", since=run.started)
    (repo / "theirs.txt").write_text("theirs\n")
    git(repo, "add", "theirs.txt")
    git(repo, "commit", "-qm", "theirs")
    decide(row, "accept")
    done = store.get_session(run.join().session_id)
    assert done.status == "accepted" and "merge commit" in done.delivered_to
    # main is checked out in the (clean) source: it was fast-forwarded to the merge commit.
    assert (repo / "mine.txt").read_text() == "mine\n" and (repo / "theirs.txt").exists()
    assert git(repo, "status", "--porcelain") == ""
    parents = git(repo, "log", "-1", "--format=%P", "main").split()
    assert len(parents) == 2 and done.delivered_commit in parents


def test_pull_request_is_opened_with_a_token_and_linked_without_one(origin, scripted, store, tmp_path, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class FakeGitHub(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers["Authorization"], body))
            data = json.dumps({"html_url": "https://github.com/acme/widgets/pull/7"}).encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    api = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "file://{origin}"]\n\tinsteadOf = https://github.com/acme/widgets.git\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("AGENT_TASKS_GITHUB_API", f"http://127.0.0.1:{api.server_port}")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_testtoken123456")
    url = "https://github.com/acme/widgets.git"
    scripted(
        [
            calls(tool("write_file", path="pr.txt", content="pr\n")),
            FINISH,
            calls(tool("write_file", path="pr2.txt", content="pr\n")),
            FINISH,
        ]
    )

    run = Background(url, "Open a PR", on_accept="pull_request")
    decide(wait_for_review(store, "Open a PR", since=run.started), "accept")
    with_token = store.get_session(run.join().session_id)
    assert with_token.delivered_to == "pull request https://github.com/acme/widgets/pull/7"
    path, auth, body = received[0]
    assert path == "/repos/acme/widgets/pulls" and auth == "Bearer ghp_testtoken123456"
    assert body["head"] == with_token.work_branch and body["base"] == "main" and body["title"] == "Open a PR"
    assert git(origin, "rev-parse", with_token.work_branch) == with_token.delivered_commit
    assert "ghp_testtoken123456" not in json.dumps([s.model_dump(mode="json") for s in store.steps(with_token.id)])

    monkeypatch.delenv("GITHUB_TOKEN")
    run = Background(url, "Open another PR", on_accept="pull_request")
    decide(wait_for_review(store, "Open another PR", since=run.started), "accept")
    without = store.get_session(run.join().session_id)
    assert f"https://github.com/acme/widgets/compare/main...{without.work_branch}?expand=1" in without.delivered_to
    assert len(received) == 1
    api.shutdown()


def test_a_delivery_that_cannot_reach_its_target_is_a_notice_and_the_session_waits(
    origin, scripted, store, tmp_path, monkeypatch
):
    from tests.conftest import free_port

    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "file://{origin}"]\n\tinsteadOf = https://github.com/acme/widgets.git\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("AGENT_TASKS_GITHUB_API", f"http://127.0.0.1:{free_port()}")  # nothing listens: the API is down
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_testtoken123456")
    scripted([calls(tool("write_file", path="pr.txt", content="pr\n")), FINISH])
    run = Background("https://github.com/acme/widgets.git", "PR while GitHub is down", on_accept="pull_request")
    first = wait_for_review(store, "PR while GitHub is down", since=run.started)
    decide(first, "accept")
    again = wait_for_review(store, "PR while GitHub is down", after_key=first.review_key, since=run.started)
    assert again.status_reason.startswith("accept failed: the pull request could not be opened: ConnectError")
    moves = [(t.from_status, t.to_status) for t in store.transitions(again.id)]
    assert moves[-2:] == [("awaiting_review", "delivering"), ("delivering", "awaiting_review")]
    assert (
        store.get_session(again.id).delivery_target
        and '"mode":"pull_request"' in store.get_session(again.id).delivery_target
    )
    decide(again, "reject")
    assert run.join().status.value == "rejected"
