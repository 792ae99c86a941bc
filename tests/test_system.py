import numpy as np
import pytest
import sympy as sp

import warp_phys as wp


x, v = sp.symbols("x v")
k, c = sp.symbols("k c", positive=True)
t = sp.Symbol("t")


def declare(**changes):
    kwargs = dict(
        name="osc",
        state=[x, v],
        equations=[v, -k * x - c * v],
        parameters={k: wp.Uniform(train=(1.0, 2.0), ood=(0.5, 3.0)), c: 0.1},
        initial_state={x: 1.0, v: 0.0},
        t_span=(0.0, 1.0),
        steps=10,
        context=3,
    )
    kwargs.update(changes)
    return wp.System(**kwargs)


def test_valid_declaration():
    system = declare()
    assert system.free_parameters == (k,)
    assert system.fixed_parameters == {c: 0.1}
    assert system.splits == wp.SPLITS
    assert declare().hash == system.hash
    assert declare(steps=11).hash != system.hash


@pytest.mark.parametrize("changes,match", [
    (dict(equations=[v, -k * x - sp.Symbol("m") * v]), "uses 'm', which is not a state, a parameter"),
    (dict(equations=[v]), "1 equation\\(s\\) for 2 state"),
    (dict(parameters={k: wp.Uniform(train=(2.0, 1.0)), c: 0.1}), "low > high"),
    (dict(parameters={k: wp.Uniform(train=(1.0, 2.0), ood=(1.5, 3.0)), c: 0.1}),
     "does not contain the train range"),
    (dict(parameters={k: wp.Choice(train=[1, 2], ood=[1, 3]), c: 0.1}), "do not contain the train"),
    (dict(parameters={k: wp.LogUniform(train=(0.0, 2.0)), c: 0.1}), "must be positive"),
    (dict(steps=1, context=1), "steps must be an integer >= 2"),
    (dict(context=10), "1 <= context < steps"),
    (dict(context=0), "1 <= context < steps"),
    (dict(parameters={k: None, c: 0.1}), "parameter 'k' has no usable value"),
    (dict(parameters={k: "fast", c: 0.1}), "parameter 'k' has no usable value"),
    (dict(parameters={c: 0.1}), "uses 'k', which is not a state"),
    (dict(initial_state={x: 1.0}), "initial_state has no value for state 'v'"),
    (dict(initial_state={x: 1.0, v: 0.0, sp.Symbol("w"): 0.0}), "not a state variable"),
    (dict(initial_state={x: sp.Symbol("q"), v: 0.0}), "uses 'q'"),
    (dict(t_span=(1.0, 0.0)), "end > start"),
    (dict(equations=None), "give equations="),
    (dict(name="bad name"), "name must be"),
    (dict(state=[]), "non-empty list of SymPy symbols"),
    (dict(equations=[v, -sp.Symbol("k") * x]), "assumptions"),
    (dict(label=k), "label must be a parameter with a wp.Choice"),
    (dict(sizes={"train": 0}), "sizes\\['train'\\] must be a positive integer"),
    (dict(sizes={"tests": 5}), "unknown key 'tests'"),
    (dict(parameters={k: 1.0, c: 0.1, sp.Symbol("t"): 1.0}), "time symbol"),
    (dict(task=wp.RepeatCopy(segment=(5, 20))), "exceeds the 10 time steps"),
])
def test_invalid_declarations_name_the_problem(changes, match):
    with pytest.raises(wp.WarpPhysError, match=match):
        declare(**changes)


def test_solution_declarations():
    phase = sp.Symbol("phase")
    system = wp.System(name="s", state=[x], solution=sp.sin(2 * sp.pi * t + phase),
                       parameters={phase: wp.Uniform(train=(-0.5, 0.5))},
                       t_span=(0.0, 1.0), steps=8, context=1)
    assert system.equations is None and system.splits == ("train", "val", "test-id", "test-paper")
    with pytest.raises(wp.WarpPhysError, match="solution uses 'x'|solution for x uses 'x'"):
        system.replace(solution=[x * t])
    with pytest.raises(wp.WarpPhysError, match="follows from solution"):
        system.replace(initial_state={x: 0.0})


def test_replace_revalidates():
    with pytest.raises(wp.WarpPhysError, match="context"):
        declare().replace(steps=3)


def test_distributions_sample_their_boxes():
    rng = np.random.default_rng(0)
    log = wp.LogUniform(train=(1e-3, 1e-1), ood=(1e-4, 1.0))
    draws = log.sample(rng, 2000, "train")
    assert draws.min() >= 1e-3 and draws.max() <= 1e-1
    # Log-uniform: half the mass below the geometric mean.
    assert abs(np.mean(draws < 1e-2) - 0.5) < 0.05
    choice = wp.Choice(train=[1, 2], ood=[1, 2, 5])
    assert set(choice.sample(rng, 200, "ood")) == {1.0, 2.0, 5.0}
    assert set(choice.sample(rng, 200, "train")) == {1.0, 2.0}
    np.testing.assert_array_equal(choice.index(np.array([2.0, 1.0])), [1, 0])


def test_every_distribution_has_bounds():
    assert wp.Uniform(train=(1.0, 2.0), ood=(0.5, 3.0)).bounds("ood") == (0.5, 3.0)
    assert wp.Uniform(train=(1.0, 2.0)).bounds("ood") == (1.0, 2.0)  # no OoD range: the train one
    assert wp.LogUniform(train=(0.1, 10.0)).bounds("train") == (0.1, 10.0)
    assert wp.Choice(train=[3, -1, 2], ood=[5, 3, -1, 2]).bounds("train") == (-1.0, 3.0)
    assert wp.Choice(train=[3, -1, 2], ood=[5, 3, -1, 2]).bounds("ood") == (-1.0, 5.0)
