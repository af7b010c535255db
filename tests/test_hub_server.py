"""The test Hub (hub_server.py) driven through the real huggingface_hub + timm download path: nothing is mocked."""

import hashlib
import time

import pytest
import timm
import torch
from huggingface_hub import model_info
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session
from timm.models._hub import _get_license_from_hf_hub

REPO = "timm-tricks/test_resnet.unit"
BIN_REPO = "timm-tricks/test_resnet.bin_only"
CARD_REPO = "timm-tricks/test_resnet.card"
SAFE = f"/{REPO}/resolve/main/model.safetensors"
CONFIG = f"/{REPO}/resolve/main/config.json"
FAILS_WITHIN_S = 30  # generous: with the fixture's short back-off these fail in well under a second


@pytest.fixture(scope="module")
def reference():
    """test_resnet with every tensor randomised (BN statistics included): a load that ignored the file would differ."""
    torch.manual_seed(0)
    model = timm.create_model("test_resnet")
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            else:
                tensor.fill_(7)  # num_batches_tracked
    return model


@pytest.fixture(scope="module", autouse=True)
def repos(hub_server, reference):
    """Publish once per module: repos outlive tests, only the log and the faults are reset."""
    hub_server.publish_model(REPO, reference)
    hub_server.publish_model(BIN_REPO, reference, safe_serialization=False)
    hub_server.publish_model(CARD_REPO, reference, extra_files={"README.md": b"---\nlicense: mit\n---\n# card\n"})
    yield
    for repo_id in (REPO, BIN_REPO, CARD_REPO):
        hub_server.remove_repo(repo_id)


def load(repo_id=REPO, **kwargs):
    """Registered `test_resnet`, weights redirected to ``repo_id`` (hub.md §1)."""
    return timm.create_model("test_resnet", pretrained=True, pretrained_cfg_overlay=dict(hf_hub_id=repo_id), **kwargs)


def assert_same_weights(model, reference, exact_keys=True):
    state, expected = model.state_dict(), reference.state_dict()
    if exact_keys:
        assert state.keys() == expected.keys()
    else:
        assert state and state.keys() <= expected.keys()
    for name, tensor in state.items():
        assert torch.equal(tensor, expected[name]), name


def cdn(hub, repo_id, filename):
    return f"/__cdn__/{hashlib.sha256(hub.read(repo_id, filename)).hexdigest()}"


def test_pretrained_overlay_downloads_identical_weights(hub, reference):
    assert_same_weights(load(), reference)
    assert hub.requests == [("HEAD", SAFE, 302), ("GET", cdn(hub, REPO, "model.safetensors"), 200)]


def test_second_load_is_served_from_cache(hub, reference):
    load()
    hub.clear_log()
    assert_same_weights(load(), reference)
    assert hub.requests == [("HEAD", SAFE, 302)]


def test_hf_hub_prefix_reads_config_then_weights(hub, reference):
    model = timm.create_model(f"hf-hub:{REPO}", pretrained=True)
    assert_same_weights(model, reference)
    assert model.pretrained_cfg["hf_hub_id"] == REPO
    assert hub.requests == [
        ("HEAD", CONFIG, 200),
        ("GET", CONFIG, 200),
        ("HEAD", SAFE, 302),
        ("GET", cdn(hub, REPO, "model.safetensors"), 200),
    ]


def test_hf_hub_prefix_features_only(hub, reference):
    model = timm.create_model(f"hf-hub:{REPO}", pretrained=True, features_only=True, out_indices=(1, 2, 3, 4))
    assert model.feature_info.out_indices == (1, 2, 3, 4)
    assert_same_weights(model, reference, exact_keys=False)


def test_commit_revision(hub, reference):
    commit = hub.commit(REPO)
    model = timm.create_model(f"hf-hub:{REPO}@{commit}", pretrained=True)
    assert_same_weights(model, reference)
    resolved = [path for _, path, _ in hub.requests if "/resolve/" in path]
    assert resolved and all(f"/resolve/{commit}/" in path for path in resolved)
    # A commit whose snapshot is cached needs no request at all (hub.md §2).
    hub.clear_log()
    timm.create_model(f"hf-hub:{REPO}@{commit}", pretrained=True)
    assert hub.requests == []


def test_unknown_revision(hub):
    with pytest.raises(RevisionNotFoundError):
        timm.create_model(f"hf-hub:{REPO}@v9.9", pretrained=True)
    assert hub.requests == [("HEAD", f"/{REPO}/resolve/v9.9/config.json", 404)]


def test_offline_with_warm_cache_makes_no_request(hub, reference):
    load()
    hub.clear_log()
    hub.offline()
    assert_same_weights(load(), reference)
    assert hub.requests == []


def test_offline_with_cold_cache(hub):
    hub.offline()
    with pytest.raises(LocalEntryNotFoundError):
        load()
    assert hub.requests == []


def test_missing_repo(hub):
    with pytest.raises(RepositoryNotFoundError):
        load("timm-tricks/does_not_exist")
    assert hub.requests == [("HEAD", "/timm-tricks/does_not_exist/resolve/main/model.safetensors", 401)]


@pytest.mark.parametrize("plain_404", [False, True], ids=["entry-not-found", "plain-404"])
def test_bin_only_repo_falls_back_after_404(hub, reference, plain_404):
    assert hub.files(BIN_REPO) == ["config.json", "pytorch_model.bin"]  # save_for_hf(safe_serialization=False)
    hub.plain_404 = plain_404
    assert_same_weights(load(BIN_REPO), reference)
    assert hub.requests == [
        ("HEAD", f"/{BIN_REPO}/resolve/main/model.safetensors", 404),
        ("HEAD", f"/{BIN_REPO}/resolve/main/pytorch_model.bin", 302),
        ("GET", cdn(hub, BIN_REPO, "pytorch_model.bin"), 200),
    ]


def test_inline_weights(hub, reference):
    hub.inline_weights = True
    assert_same_weights(load(), reference)
    assert hub.requests == [("HEAD", SAFE, 200), ("GET", SAFE, 200)]


def test_truncated_safetensors_is_an_error(hub):
    data = hub.read(REPO, "model.safetensors")
    hub.replace_file(REPO, "model.safetensors", data[: len(data) // 2])
    with pytest.raises(Exception, match="deserializ"):
        load()
    # The transfer itself succeeded: the failure is the file's content, caught by safetensors.
    assert hub.requests == [("HEAD", SAFE, 302), ("GET", cdn(hub, REPO, "model.safetensors"), 200)]


def test_missing_commit_header_gives_misleading_bin_error(hub):
    """hub.md §3: any metadata failure on model.safetensors falls through to pytorch_model.bin."""
    hub.omit_headers = {"X-Repo-Commit"}
    with pytest.raises(EntryNotFoundError, match="pytorch_model.bin"):
        load()
    assert [path for _, path, _ in hub.requests] == [SAFE, f"/{REPO}/resolve/main/pytorch_model.bin"]


def test_server_down_fails_fast(hub):
    hub.server_down()
    start = time.monotonic()
    with pytest.raises(LocalEntryNotFoundError, match="check your connection") as error:
        load()
    assert time.monotonic() - start < FAILS_WITHIN_S
    assert "Connection refused" in str(error.value.__cause__)
    assert hub.requests == []


def test_http_500_fails_after_bounded_retries(hub):
    hub.fail("/resolve/", 500)
    start = time.monotonic()
    with pytest.raises(LocalEntryNotFoundError) as error:
        load()
    assert time.monotonic() - start < FAILS_WITHIN_S
    assert "500 Internal Server Error" in str(error.value.__cause__)
    # 1 HEAD + 1 retried HEAD with 5 retries, for model.safetensors and then for the pytorch_model.bin fallback.
    bin_head = ("HEAD", f"/{REPO}/resolve/main/pytorch_model.bin", 500)
    assert hub.requests == [("HEAD", SAFE, 500)] * 7 + [bin_head] * 7


def test_model_info_and_license(hub):
    info = model_info(CARD_REPO)
    assert info.sha == hub.commit(CARD_REPO)
    assert sorted(s.rfilename for s in info.siblings) == ["README.md", "config.json", "model.safetensors"]
    assert _get_license_from_hf_hub("test_resnet.card", "timm-tricks/") == "mit"
    assert hub.requests == [("GET", f"/api/models/{CARD_REPO}", 200)] * 2


def test_range_requests_and_unknown_api(hub):
    session = get_session()
    data = hub.read(REPO, "config.json")
    response = session.get(f"{hub.endpoint}{CONFIG}", headers={"Range": "bytes=2-9"})
    assert (response.status_code, response.content) == (206, data[2:10])
    assert response.headers["Content-Range"] == f"bytes 2-9/{len(data)}"
    response = session.get(f"{hub.endpoint}/api/whoami-v2")
    assert response.status_code == 404 and "error" in response.json()
