"""ModelSpec: validation of bad input (hypothesis), identity (to_dict/from_dict, hash, eq), layout."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostsing.models import ACTIVATIONS, MAX_UNITS, ModelSpec

FAST = settings(max_examples=60, deadline=None, database=None)  # no .hypothesis/ in the checkout

bad_unit_counts = st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_UNITS + 1))
bad_activations = st.text(max_size=12).filter(lambda s: s not in ACTIVATIONS) | st.sampled_from(
    ["tanh", "sigmoid", "ReLU", "Erf", " erf", "erf "])
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
negative = st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False)
not_numbers = st.one_of(st.text(max_size=5), st.just(None), st.lists(st.floats(), max_size=2), st.booleans())


def _names(message: str, *parts: str) -> bool:
    return all(p in message for p in parts)


# ------------------------------------------------------------------------------------- bad integers
@FAST
@given(K=bad_unit_counts)
def test_K_out_of_range(K: int) -> None:
    with pytest.raises(ValueError) as err:
        ModelSpec(K=K, M=1, N=4)
    assert _names(str(err.value), f"K={K}", f"allowed: 1..{MAX_UNITS}")


@FAST
@given(M=bad_unit_counts)
def test_M_out_of_range(M: int) -> None:
    with pytest.raises(ValueError) as err:
        ModelSpec(K=1, M=M, N=4)
    assert _names(str(err.value), f"M={M}", f"allowed: 1..{MAX_UNITS}")


@FAST
@given(N=st.integers(max_value=0))
def test_N_out_of_range(N: int) -> None:
    with pytest.raises(ValueError) as err:
        ModelSpec(K=1, M=1, N=N, B=np.zeros((1, 0)))
    assert _names(str(err.value), f"N={N}", "allowed: >= 1")


@FAST
@given(field=st.sampled_from(["K", "M", "N"]),
       value=st.one_of(st.booleans(), st.text(max_size=3), st.floats(), st.just(None), st.just(2.0)))
def test_unit_counts_must_be_ints(field: str, value) -> None:
    with pytest.raises(TypeError) as err:
        ModelSpec(**{"K": 1, "M": 1, "N": 2, field: value})
    assert _names(str(err.value), field, "must be an int", repr(value))


# ------------------------------------------------------------------------------------- activation
@FAST
@given(act=bad_activations)
def test_unknown_activation(act: str) -> None:
    with pytest.raises(ValueError) as err:
        ModelSpec(activation=act)
    assert _names(str(err.value), repr(act), "allowed: erf, relu, linear")


@pytest.mark.parametrize("act", [None, 3, b"erf"])
def test_non_string_activation(act) -> None:
    with pytest.raises((TypeError, ValueError)) as err:
        ModelSpec(activation=act)
    assert _names(str(err.value), repr(act), "erf, relu, linear")


# ------------------------------------------------------------------------------------- floats
@FAST
@given(field=st.sampled_from(["alpha", "sigma"]), value=st.one_of(negative, non_finite))
def test_alpha_sigma_must_be_finite_nonnegative(field: str, value: float) -> None:
    with pytest.raises(ValueError) as err:
        ModelSpec(**{field: value})
    assert _names(str(err.value), f"{field}={float(value)}", "allowed: a finite float >= 0")


@FAST
@given(field=st.sampled_from(["alpha", "sigma"]), value=not_numbers)
def test_alpha_sigma_must_be_numbers(field: str, value) -> None:
    with pytest.raises(TypeError) as err:
        ModelSpec(**{field: value})
    assert _names(str(err.value), field, "must be a float", repr(value))


# ------------------------------------------------------------------------------------- arrays
@FAST
@given(K=st.integers(1, 4), M=st.integers(1, 4), N=st.integers(1, 6), extra=st.integers(1, 3),
       which=st.sampled_from(["v", "B", "skip_directions"]), axis=st.integers(0, 1))
def test_wrong_array_shapes(K: int, M: int, N: int, extra: int, which: str, axis: int) -> None:
    good = {"v": (M,), "B": (M, N), "skip_directions": (K, N)}[which]
    bad = list(good)
    bad[min(axis, len(bad) - 1)] += extra
    B = np.ones((M, N))  # explicit teacher, so that N < M is allowed when B is not the field under test
    kwargs = {"K": K, "M": M, "N": N, "B": B, which: np.ones(tuple(bad))}
    with pytest.raises(ValueError) as err:
        ModelSpec(**kwargs)
    assert _names(str(err.value), which, str(tuple(bad)), f"allowed: shape {good}")


@FAST
@given(which=st.sampled_from(["v", "B", "skip_directions"]), bad=non_finite)
def test_non_finite_arrays(which: str, bad: float) -> None:
    arr = {"v": np.ones(2), "B": np.eye(2), "skip_directions": np.eye(2)}[which]
    arr = arr.copy()
    arr.flat[0] = bad
    with pytest.raises(ValueError) as err:
        ModelSpec(K=2, M=2, N=2, **{which: arr})
    assert _names(str(err.value), which, "non-finite", "allowed: finite floats")


@pytest.mark.parametrize("value", ["ab", [[1.0, "x"]], {"a": 1}])
def test_non_numeric_arrays(value) -> None:
    with pytest.raises(ValueError) as err:
        ModelSpec(K=1, M=1, N=2, v=value)
    assert _names(str(err.value), "v=", repr(value)[:5])


@FAST
@given(K=st.integers(2, 4), alpha=st.floats(min_value=1e-6, max_value=10.0))
def test_identity_skip_needs_N_at_least_K(K: int, alpha: float) -> None:
    N = K - 1
    with pytest.raises(ValueError) as err:
        ModelSpec(K=K, M=1, N=N, alpha=alpha, B=np.ones((1, N)))
    assert _names(str(err.value), f"alpha={alpha}", f"N={N}", f"K={K}", "allowed")
    # the same model is fine without skips, or with explicit skip directions
    ModelSpec(K=K, M=1, N=N, alpha=0.0, B=np.ones((1, N)))
    ModelSpec(K=K, M=1, N=N, alpha=alpha, B=np.ones((1, N)), skip_directions=np.ones((K, N)))


def test_default_teacher_needs_N_at_least_M() -> None:
    with pytest.raises(ValueError, match=r"N=1, M=2.*allowed: pass B explicitly"):
        ModelSpec(K=1, M=2, N=1)


# ------------------------------------------------------------------------------------- good specs
good_specs = st.builds(
    lambda K, M, N, act, alpha, sigma, seed: ModelSpec(
        K=K, M=M, N=N, activation=act, alpha=alpha, sigma=sigma,
        v=np.random.default_rng(seed).normal(size=M), B=np.random.default_rng(seed + 1).normal(size=(M, N)),
        skip_directions=np.random.default_rng(seed + 2).normal(size=(K, N))),
    K=st.integers(1, 4), M=st.integers(1, 4), N=st.integers(1, 5), act=st.sampled_from(ACTIVATIONS),
    alpha=st.floats(0.0, 5.0), sigma=st.floats(0.0, 2.0), seed=st.integers(0, 10_000),
)


@FAST
@given(spec=good_specs)
def test_round_trip_to_dict_from_dict(spec: ModelSpec) -> None:
    d = spec.to_dict()
    again = ModelSpec.from_dict(json.loads(json.dumps(d)))
    assert again == spec and hash(again) == hash(spec) and again.key() == spec.key()
    np.testing.assert_array_equal(again.B, spec.B)
    np.testing.assert_array_equal(again.v, spec.v)
    np.testing.assert_array_equal(again.skip_directions, spec.skip_directions)
    assert re.fullmatch(r"[0-9a-f]{64}", spec.key())


@FAST
@given(spec=good_specs, d_alpha=st.floats(1e-9, 1.0))
def test_different_specs_differ(spec: ModelSpec, d_alpha: float) -> None:
    other = spec.replace(alpha=spec.alpha + d_alpha)
    assert other != spec and other.key() != spec.key()
    assert len({spec, other, spec.replace()}) == 2


@FAST
@given(spec=good_specs, seed=st.integers(0, 1000))
def test_split_pack_are_inverse(spec: ModelSpec, seed: int) -> None:
    theta = np.random.default_rng(seed).normal(size=spec.n_params)
    w, J = spec.split(theta)
    assert w.shape == (spec.K,) and J.shape == (spec.K, spec.N)
    np.testing.assert_array_equal(J[-1], theta[spec.K + (spec.K - 1) * spec.N:])  # J_K is last
    np.testing.assert_array_equal(spec.pack(w, J), theta)


def test_defaults_and_readonly() -> None:
    spec = ModelSpec(K=2, M=3, N=4, alpha=0.5)
    np.testing.assert_array_equal(spec.v, np.ones(3))
    np.testing.assert_array_equal(spec.B, np.eye(3, 4))
    np.testing.assert_array_equal(spec.skip_directions, np.eye(2, 4))
    assert spec.n_params == 2 + 2 * 4
    with pytest.raises(ValueError):
        spec.B[0, 0] = 2.0  # read-only array
    with pytest.raises(AttributeError):
        spec.alpha = 1.0  # frozen dataclass
    with pytest.raises(ValueError, match="K == M"):
        spec.teacher_theta()
    with pytest.raises(ValueError, match="allowed: 10"):
        spec.split(np.zeros(9))


# ------------------------------------------------------------------------------------- names
def test_skip_strength_and_directions_have_their_own_names() -> None:
    """``alpha`` is the skip strength and ``skip_directions`` the directions s_i (the field was "skip"):
    to_dict writes the new name, from_dict also reads files written under the old one, and key() -- the
    digest of the on-disk caches -- is the one computed before the rename."""
    spec = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]],
                     skip_directions=[[1.0], [0.5]])
    d = spec.to_dict()
    assert "skip_directions" in d and "skip" not in d and not hasattr(spec, "skip")
    legacy = {k: v for k, v in d.items() if k != "skip_directions"} | {"skip": d["skip_directions"]}
    assert ModelSpec.from_dict(legacy) == spec
    assert spec.key() == "eac1f15a7ce9d738f13d53df8b1f074f474974070f90c2e8e475eaabb4804d57"
    assert ModelSpec(K=2, M=2, N=2, activation="erf", alpha=0.5).key() == (
        "3b2dcd583aa20ecc3922aea0a7bd71e5b09acbf5f16eb4a639f06a64ad4526ab")
    with pytest.raises(TypeError, match="skip"):
        ModelSpec(K=2, M=2, N=2, skip=np.eye(2))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"skip_directions has shape \(1, 2\)"):
        ModelSpec(K=2, M=2, N=2, skip_directions=np.ones((1, 2)))
