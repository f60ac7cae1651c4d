"""harness.measure.memory: the CPU tracker against byte counts computed by hand (numel x element
size, and which tensors autograd keeps alive), and the CUDA protocol with torch.cuda replaced."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.core.errors import InvalidInputError
from harness.core.schema import column_names
from harness.measure.memory import MemoryResult, measure_peak_memory

F32, F64, F16 = 4, 8, 2


def extra(r: MemoryResult) -> int:
    """Bytes the step added on top of the baseline at its peak."""
    assert r.peak_memory_bytes is not None and r.memory_baseline_bytes is not None
    return r.peak_memory_bytes - r.memory_baseline_bytes


def test_known_allocation_sequence() -> None:
    def step() -> None:
        a = torch.empty(1000)  # 4000 B live
        b = torch.empty(500)  # 6000 B live: the peak
        del a  # 2000
        c = torch.empty(250, dtype=torch.float64)  # 4000
        c.view(25, 10).add_(1)  # a view and an in-place op allocate nothing
        del b, c

    r = measure_peak_memory(step, "cpu")
    assert r == MemoryResult(1000 * F32 + 500 * F32, 0, "cpu_tensor_tracker")


def test_freed_memory_is_not_counted_twice() -> None:
    def step() -> None:
        a = torch.empty(1000)  # 4000
        del a
        b = torch.empty(2000)  # 8000, after a was freed
        del b

    assert measure_peak_memory(step, "cpu").peak_memory_bytes == 2000 * F32


def test_views_share_their_base_storage() -> None:
    def step() -> torch.Tensor:
        x = torch.zeros(40, 25)
        return x.t()[::2].reshape(-1)[:7].unsqueeze(0)  # views, but one copy

    # reshape of a non-contiguous view copies: 40*25 floats, then the copy of 13*40 floats
    r = measure_peak_memory(step, "cpu")
    assert r.peak_memory_bytes == (40 * 25 + 13 * 40) * F32


def test_element_sizes() -> None:
    def step() -> None:
        torch.empty(1000, dtype=torch.float16)
        torch.empty(3, 5, dtype=torch.int64)

    assert measure_peak_memory(step, "cpu").peak_memory_bytes == 1000 * F16  # freed at once


def test_out_argument_resize_counts_the_new_size() -> None:
    def step() -> None:
        a, b = torch.ones(1000), torch.ones(1000)
        c = torch.empty(0)
        torch.add(a, b, out=c)  # c grows from 0 to 1000 floats

    assert measure_peak_memory(step, "cpu").peak_memory_bytes == 3 * 1000 * F32


def test_baseline_counts_each_storage_once() -> None:
    w = torch.empty(300)
    x = torch.empty(20, dtype=torch.float64)
    r = measure_peak_memory(lambda: x + 1, "cpu", baseline_tensors=[w, w.view(3, 100), x])
    assert r.memory_baseline_bytes == 300 * F32 + 20 * F64
    assert extra(r) == 20 * F64  # x + 1
    # the peak is absolute: baseline included
    assert r.peak_memory_bytes == 300 * F32 + 2 * 20 * F64


def test_conv_activation_bytes_from_the_output_shape() -> None:
    n, cin, cout, h, w = 2, 3, 8, 16, 16
    conv = nn.Conv2d(cin, cout, 3, padding=1)  # same-size output: (16 - 3 + 2) / 1 + 1 = 16
    x = torch.randn(n, cin, h, w)
    base = [*conv.parameters(), x]
    with torch.inference_mode():
        r = measure_peak_memory(lambda: conv(x), "cpu", base)
    assert r.memory_baseline_bytes == (cout * cin * 9 + cout + n * cin * h * w) * F32
    assert extra(r) == n * cout * h * w * F32

    net = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    base = [*net.parameters(), x]
    with torch.inference_mode():
        r = measure_peak_memory(lambda: net(x), "cpu", base)
    # worst moment: the conv output still alive while ReLU writes its own
    assert extra(r) == 2 * n * cout * h * w * F32


def chain(n_layers: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n_layers):
        layers += [nn.Linear(width, width, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def test_saved_activations_count_when_autograd_records() -> None:
    n_layers, batch, width = 6, 4, 64
    net = chain(n_layers, width)
    x = torch.randn(batch, width)
    act = batch * width * F32  # one activation
    base = [*net.parameters(), x]

    with torch.no_grad():
        r_inf = measure_peak_memory(lambda: net(x), "cpu", base)
    # no graph: at most a Linear output and the Tanh output written from it
    assert extra(r_inf) == 2 * act

    r_rec = measure_peak_memory(lambda: net(x), "cpu", base)
    # tanh saves its output for backward (d tanh = 1 - y^2) and the next Linear saves its input,
    # the same tensor: at the last Tanh, n-1 saved outputs + the last Linear output + its Tanh
    assert extra(r_rec) == (n_layers + 1) * act


def test_training_step_peak_exceeds_inference_and_holds_the_gradients() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(100, 200), nn.ReLU(), nn.Linear(200, 10))
    x = torch.randn(32, 100)
    base = [*net.parameters(), x]
    param_bytes = (100 * 200 + 200 + 200 * 10 + 10) * F32
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        net(x).sum().backward()
        opt.step()

    with torch.inference_mode():
        r_inf = measure_peak_memory(lambda: net(x), "cpu", base)
    r_train = measure_peak_memory(train, "cpu", base)
    assert (
        r_inf.memory_baseline_bytes == r_train.memory_baseline_bytes == param_bytes + 32 * 100 * F32
    )
    assert extra(r_inf) == 2 * 32 * 200 * F32  # Linear-1 output + ReLU output
    # every parameter gets a gradient of its own size, alive at the end of backward
    assert extra(r_train) >= param_bytes
    assert r_train.peak_memory_bytes > r_inf.peak_memory_bytes


def test_columns_and_unmeasured_devices() -> None:
    r = measure_peak_memory(lambda: torch.empty(10), "meta")
    assert r.peak_memory_bytes is None and r.memory_baseline_bytes is None
    assert r.memory_source.startswith("unavailable:")
    assert set(r.to_columns()) <= set(column_names("cases"))


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        measure_peak_memory(42, "cpu")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        measure_peak_memory(lambda: None, "gpu0")


def test_a_failing_step_propagates() -> None:
    def step() -> None:
        torch.empty(10)
        raise ValueError("inside the step")

    with pytest.raises(ValueError, match="inside the step"):
        measure_peak_memory(step, "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
def test_cuda_without_cuda_is_a_typed_error() -> None:
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        measure_peak_memory(lambda: None, "cuda")


def test_cuda_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    """The allocator branch's order of calls, torch.cuda replaced by recorders."""
    events: list[str] = []
    state = {"allocated": 1_000, "peak": 1_000}

    def step() -> None:
        events.append("step")
        state["peak"] = 5_000

    def reset(device: object = None) -> None:
        events.append("reset")
        state["peak"] = state["allocated"]

    def allocated(device: object = None) -> int:
        events.append("allocated")
        return state["allocated"]

    def max_allocated(device: object = None) -> int:
        events.append("max")
        return state["peak"]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", reset)
    monkeypatch.setattr(torch.cuda, "memory_allocated", allocated)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", max_allocated)

    r = measure_peak_memory(step, "cuda:0")
    assert events == ["sync", "reset", "allocated", "step", "sync", "max"]
    assert r == MemoryResult(5_000, 1_000, "cuda_allocator")


def test_cuda_training_baseline_is_read_without_the_last_steps_gradients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fake allocator that counts the bytes of the live weights and gradients: the step's
    zero_grad(set_to_none=True) frees the previous gradients and backward allocates new ones, so
    the step's own peak is the new gradients, param_bytes; with the old gradients counted in the
    baseline it came out as 0."""
    net = nn.Linear(100, 50)
    params = list(net.parameters())
    param_bytes = (100 * 50 + 50) * F32
    opt = torch.optim.SGD(params, lr=0.1)

    def live_bytes() -> int:
        grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
        return param_bytes + grads

    peak = {"bytes": 0}

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        net(torch.ones(1, 100)).sum().backward()
        peak["bytes"] = max(peak["bytes"], live_bytes())  # the worst moment: after backward
        opt.step()

    train()  # a previous round: its gradients are alive now
    assert live_bytes() == 2 * param_bytes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(
        torch.cuda, "reset_peak_memory_stats", lambda device=None: peak.update(bytes=live_bytes())
    )
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: live_bytes())
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: peak["bytes"])

    r = measure_peak_memory(train, "cuda:0", baseline_tensors=params)
    assert r.memory_baseline_bytes == param_bytes  # the weights, not their old gradients
    assert extra(r) == param_bytes  # the step's own gradients

    train()
    kept = measure_peak_memory(train, "cuda:0", baseline_tensors=params, drop_gradients_first=False)
    assert kept.memory_baseline_bytes == 2 * param_bytes and extra(kept) == 0  # the old defect


def test_tensors_built_from_python_data_count() -> None:
    def step() -> None:
        a = torch.tensor([1.0, 2.0, 3.0])  # 3 float32
        b = torch.tensor([[1, 2], [3, 4]])  # 4 int64
        del a, b

    assert measure_peak_memory(step, "cpu").peak_memory_bytes == 3 * F32 + 4 * 8


def test_sparse_outputs_do_not_break_the_tracker() -> None:
    i = torch.tensor([[0, 1], [1, 0]])
    v = torch.tensor([3.0, 4.0])

    def step() -> torch.Tensor:
        sp = torch.sparse_coo_tensor(i, v, (2, 2), check_invariants=False)  # no storage of its own
        return sp.to_dense()  # 4 float32

    r = measure_peak_memory(step, "cpu", baseline_tensors=[i, v])
    assert r.memory_baseline_bytes == 4 * 8 + 2 * F32
    assert r.peak_memory_bytes is not None
    assert extra(r) >= 4 * F32
