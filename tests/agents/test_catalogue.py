"""The catalogue layer (dts_ppl/agents/catalogue.py): adding and retiring actions at run time.

The reference is always an agent built from scratch with one action per id ever added, fed the
same rows (minus those of actions retired with ``forget=True``): a retired action whose evidence
is kept is, for the latents, an action that exists and is never played again.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import DiffusionPrior
from dts_ppl.agents import bank_ts, dts, lin_ts, theta_marginal
from dts_ppl.agents.catalogue import catalogue, grow, slots_of

D, CAP, N0, T = 3, 6, 3, 48
# one event per round: 0 none, 1 add one action, 2 retire (keep evidence), 3 retire (forget)
EVENT_ROUNDS = {8: 1, 12: 1, 18: 2, 24: 1, 30: 3, 36: 1, 40: 2}


def _prior():
    W1 = jnp.array([[0.8, -0.3, 0.1], [0.2, 0.5, -0.4], [0.0, 0.3, 0.9]])
    W2 = jnp.array([[0.6, 0.1, 0.0], [-0.2, 0.7, 0.0], [0.3, 0.0, 0.0]])
    return DiffusionPrior.linear([W1, W2], [0.3, 1.0, 1.5], offsets=[jnp.array([0.2, -0.1, 0.0]), jnp.zeros(3)])


def _schedule(targets):
    """Event codes (T,) and the id each retirement targets (T,)."""
    codes = np.zeros(T, np.int32)
    who = np.zeros(T, np.int32)
    for (t, c), target in zip(sorted(EVENT_ROUNDS.items()), targets, strict=True):
        codes[t], who[t] = c, target
    return jnp.asarray(codes), jnp.asarray(who)


def _run(cat, codes, who, key, trace_count):
    """A jitted loop acting, learning, adding and retiring; returns the final state and the rows."""
    theta = jax.random.normal(jax.random.PRNGKey(7), (64, D))  # the true parameter of each id

    def body(state, inp):
        t, code, target, k = inp
        k_act, k_x, k_y = jax.random.split(k, 3)
        state = jax.lax.switch(
            code,
            [
                lambda s: s,
                lambda s: cat.add_actions(s, 1)[0],
                lambda s: cat.retire_actions(s, target[None]),
                lambda s: cat.retire_actions(s, target[None], forget=True),
            ],
            state,
        )
        x = jax.random.normal(k_x, (D,))
        a, info = cat.act(k_act, state, x)
        y = theta[a] @ x + 0.5 * jax.random.normal(k_y, ())
        return cat.update(state, x, a, y), (x, a, y, info.valid)

    def loop(codes, who, key):
        trace_count.append(1)  # a Python side effect: runs once per trace
        keys = jax.random.split(key, T)
        return jax.lax.scan(body, cat.init(), (jnp.arange(T), codes, who, keys))

    return loop


def _reference(make_agent, rows, num_ids, forgotten):
    X, A, y, valid = (np.asarray(r) for r in rows)
    keep = valid & ~np.isin(A, forgotten)
    agent = make_agent(num_ids)
    return agent.update_batch(agent.init(), jnp.asarray(X[keep]), jnp.asarray(A[keep]), jnp.asarray(y[keep]))


SLOW = pytest.mark.slow


KINDS = ["dts", pytest.param("dts_full_chain", marks=SLOW), pytest.param("lin_ts", marks=SLOW)]


@pytest.mark.parametrize("kind", KINDS)
def test_add_and_retire_in_a_jitted_loop_compile_once_and_match_an_agent_built_from_scratch(kind):
    prior = _prior()
    if kind == "dts":
        make = lambda K: dts(prior, num_actions=K)  # noqa: E731  (an affine chain runs collapsed to psi_1)
    elif kind == "dts_full_chain":
        make = lambda K: dts(prior, num_actions=K, collapse=False)  # noqa: E731
    else:
        make = lambda K: lin_ts(theta_marginal(prior), num_actions=K)  # noqa: E731
    cat = catalogue(make, CAP, N0)
    traces = []
    loop = jax.jit(_run(cat, None, None, None, traces))
    # two schedules with other retirement targets and keys: one compilation for both
    runs = []
    for targets, seed in (([0, 0, 1, 2, 0, 0, 4], 0), ([0, 0, 2, 0, 0, 0, 3], 1)):
        codes, who = _schedule(targets)
        final, rows = loop(codes, who, jax.random.PRNGKey(seed))
        runs.append((targets, final, rows))
    assert len(traces) == 1 and loop._cache_size() == 1

    for targets, final, rows in runs:
        assert bool(np.all(np.asarray(rows[3])))  # every round chose a valid action
        forgotten = [w for (t, c), w in zip(sorted(EVENT_ROUNDS.items()), targets, strict=True) if c == 3]
        retired = [w for (t, c), w in zip(sorted(EVENT_ROUNDS.items()), targets, strict=True) if c in (2, 3)]
        num_ids = int(final.next_id)
        assert num_ids == N0 + 4
        active = np.array(sorted(set(range(num_ids)) - set(retired)))
        assert sorted(np.asarray(final.ids)[np.asarray(final.active)].tolist()) == active.tolist()
        chosen = np.asarray(rows[1])
        for t in range(T):  # a retired id is never chosen after its retirement
            gone = [
                w for (r, c), w in zip(sorted(EVENT_ROUNDS.items()), targets, strict=True) if c in (2, 3) and r <= t
            ]
            assert chosen[t] not in gone
        ref = _reference(make, rows, num_ids, forgotten)
        slots = np.asarray(slots_of(final, jnp.array(active)))
        inner = final.inner
        if kind != "lin_ts":
            pairs = [
                (inner.theta_cov[slots], ref.theta_cov[active]),
                (inner.theta_shift[slots], ref.theta_shift[active]),
            ]
            pairs += list(zip(jax.tree.leaves(inner.latents), jax.tree.leaves(ref.latents), strict=True))
            pairs += list(zip(jax.tree.leaves(inner.evidence_sum), jax.tree.leaves(ref.evidence_sum), strict=True))
        else:
            pairs = [(inner.mean[slots], ref.mean[active]), (inner.cov[slots], ref.cov[active])]
        pairs.append((inner.evidence.stats.G[slots], ref.evidence.stats.G[active]))
        for got, want in pairs:
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-10)
        # free slots are fresh: exactly the agent's init rows
        free = np.flatnonzero(np.asarray(final.ids) < 0)
        fresh = cat.agent.init()
        np.testing.assert_array_equal(
            np.asarray(inner.evidence.stats.G[free]), np.asarray(fresh.evidence.stats.G[free])
        )


def test_a_new_dts_action_starts_from_the_conditional_prior_given_the_latent_posterior():
    prior = _prior()
    cat = catalogue(lambda K: dts(prior, num_actions=K, collapse=False), 4, 2)
    state = cat.init()
    X = jax.random.normal(jax.random.PRNGKey(1), (30, D))
    A = jnp.arange(30) % 2
    state = cat.update_batch(state, X, A, X @ jnp.array([1.0, -1.0, 0.5]))
    before = state.inner.latents
    state, new = cat.add_actions(state, 1)
    slot = int(slots_of(state, new)[0])
    # theta_a | psi_1 ~ N(f_1(psi_1), S_1): Shat = S_1 and shift 0; the latents' posterior unchanged
    np.testing.assert_array_equal(np.asarray(state.inner.theta_cov[slot]), np.asarray(prior.cov1))
    np.testing.assert_array_equal(np.asarray(state.inner.theta_shift[slot]), np.zeros(D))
    for u, v in zip(jax.tree.leaves(before), jax.tree.leaves(state.inner.latents), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("kind", ["dts", "lin_ts", pytest.param("bank_ts", marks=pytest.mark.slow)])
def test_side_information_is_a_gaussian_pseudo_observation_of_the_newcomer(kind):
    prior = _prior()
    gauss = theta_marginal(prior)
    bank = jax.random.normal(jax.random.PRNGKey(3), (400, D))
    make = {
        "dts": lambda K: dts(prior, num_actions=K),
        "lin_ts": lambda K: lin_ts(gauss, num_actions=K),
        "bank_ts": lambda K: bank_ts(bank, num_actions=K),
    }[kind]
    cat = catalogue(make, 3, 1)
    m = jnp.array([[0.5, -1.0, 2.0]])
    C = jnp.array([[0.5, 0.1, 0.0], [0.1, 0.4, 0.05], [0.0, 0.05, 0.3]])
    state, new = cat.add_actions(cat.init(), 1, prior_mean=m, prior_cov=C)
    slot = int(slots_of(state, new)[0])
    Ci = np.linalg.inv(np.asarray(C))
    inner = state.inner
    assert int(inner.step) == 0 and int(inner.rejected) == 0
    if kind == "bank_ts":  # log-weights: -1/2 (theta - m)^T C^-1 (theta - m) up to a constant
        diff = np.asarray(bank) - np.asarray(m[0])
        want = -0.5 * np.einsum("ni,ij,nj->n", diff, Ci, diff)
        got = np.asarray(inner.log_weights[slot])
        np.testing.assert_allclose(got - got.max(), want - want.max(), atol=1e-10)
        return
    np.testing.assert_allclose(np.asarray(inner.evidence.stats.G[slot]), Ci, atol=1e-10)
    np.testing.assert_allclose(np.asarray(inner.evidence.stats.b[slot]), Ci @ np.asarray(m[0]), atol=1e-10)
    if kind == "lin_ts":  # N(mu0, Sigma0) times N(m; theta, C)
        P = np.linalg.inv(np.asarray(gauss.cov)) + Ci
        mean = np.linalg.solve(
            P, np.linalg.solve(np.asarray(gauss.cov), np.asarray(gauss.mean)) + Ci @ np.asarray(m[0])
        )
        np.testing.assert_allclose(np.asarray(inner.cov[slot]), np.linalg.inv(P), atol=1e-10)
        np.testing.assert_allclose(np.asarray(inner.mean[slot]), mean, atol=1e-10)
    else:  # theta | psi_1, m ~ N(P^-1 (S_1^-1 f_1(psi_1) + C^-1 m), P^-1), P = S_1^-1 + C^-1
        P = np.linalg.inv(np.asarray(prior.cov1)) + Ci
        np.testing.assert_allclose(np.asarray(inner.theta_cov[slot]), np.linalg.inv(P), atol=1e-10)
        np.testing.assert_allclose(
            np.asarray(inner.theta_shift[slot]), np.linalg.solve(P, Ci @ np.asarray(m[0])), atol=1e-10
        )


@pytest.mark.slow  # growth also runs in the Bandit test (add_action when full, load)
def test_grow_keeps_every_posterior_and_adds_fresh_slots():
    prior = _prior()
    make = lambda K: dts(prior, num_actions=K)  # noqa: E731
    cat = catalogue(make, 2)
    X = jax.random.normal(jax.random.PRNGKey(2), (20, D))
    A = jnp.arange(20) % 2
    y = X @ jnp.array([0.3, 0.2, -1.0])
    state = cat.update_batch(cat.init(), X, A, y)
    with pytest.raises(ValueError, match="n: only 0 of 2 slots are free"):
        cat.add_actions(state, 1)
    big, grown = grow(cat, state, 5)
    assert big.spec.num_actions == 5 and grown.ids.tolist() == [0, 1, -1, -1, -1]
    grown, new = big.add_actions(grown, 2)
    assert new.tolist() == [2, 3]
    ref = make(4)
    ref = ref.update_batch(ref.init(), X, A, y)
    np.testing.assert_allclose(np.asarray(grown.inner.theta_cov[:4]), np.asarray(ref.theta_cov), atol=1e-12)
    np.testing.assert_allclose(np.asarray(grown.inner.theta_shift[:4]), np.asarray(ref.theta_shift), atol=1e-12)


def test_copy_from_starts_a_newcomer_as_the_copy_of_an_existing_posterior():
    gauss = theta_marginal(_prior())
    cat = catalogue(lambda K: lin_ts(gauss, num_actions=K), 3, 2)
    state = cat.update(cat.init(), jnp.ones(D), 1, 2.0)
    state, new = cat.add_actions(state, 1, copy_from=jnp.array([1]))
    slot = int(slots_of(state, new)[0])
    np.testing.assert_array_equal(np.asarray(state.inner.mean[slot]), np.asarray(state.inner.mean[1]))
    with pytest.raises(ValueError, match="copy_from"):
        dcat = catalogue(lambda K: dts(_prior(), num_actions=K), 3, 2)
        dcat.add_actions(dcat.init(), 1, copy_from=jnp.array([0]))


def test_bad_catalogue_input_raises_value_errors_naming_the_argument():
    prior = _prior()
    cat = catalogue(lambda K: dts(prior, num_actions=K), 3, 2)
    state = cat.init()
    with pytest.raises(ValueError, match="^action: id 2 is not an active action"):
        cat.update(state, jnp.ones(D), 2, 1.0)
    with pytest.raises(ValueError, match="^ids: id 5"):
        cat.retire_actions(state, jnp.array([5]))
    with pytest.raises(ValueError, match="^n: "):
        cat.add_actions(state, 0)
    with pytest.raises(ValueError, match="^prior_mean: expected shape"):
        cat.add_actions(state, 1, prior_mean=jnp.ones(D), prior_cov=jnp.eye(D))
    with pytest.raises(ValueError, match="^capacity"):
        catalogue(lambda K: dts(prior, num_actions=K), 0)
    with pytest.raises(ValueError, match="^num_active"):
        catalogue(lambda K: dts(prior, num_actions=K), 2, 3)
    with pytest.raises(ValueError, match="^make_agent"):
        catalogue(dts(prior, num_actions=2), 2)
    state = cat.retire_actions(state, jnp.array([0, 1]))
    with pytest.raises(ValueError, match="^mask: every action is masked out"):
        cat.act(jax.random.PRNGKey(0), state, jnp.ones(D))


def test_bandit_adds_retires_saves_loads_and_continues_bit_identically(tmp_path):
    from dts_ppl import Bandit

    prior = _prior()
    cat = catalogue(lambda K: dts(prior, num_actions=K), 3)
    rng = np.random.default_rng(0)
    contexts = rng.normal(size=(24, D))
    theta = rng.normal(size=(16, D))

    def play(bandit, rows):
        chosen = []
        for x in rows:
            a = bandit.choose(x)
            bandit.partial_fit(x, a, float(theta[a] @ x))
            chosen.append(a)
        return chosen

    bandit = Bandit(cat, jax.random.PRNGKey(0))
    play(bandit, contexts[:6])
    new = bandit.add_action()  # every slot taken: the capacity doubles
    assert new == 3 and bandit.agent.spec.num_actions == 6
    assert bandit.add_action(prior_mean=np.ones(D), prior_cov=np.eye(D)) == 4
    bandit.retire([1])
    assert bandit.action_ids.tolist() == [0, 2, 3, 4]
    with pytest.raises(ValueError, match="^A: id 1 is not an active action"):
        bandit.partial_fit(contexts[0], 1, 0.0)
    with pytest.raises(ValueError, match="^mask: "):
        bandit.choose(contexts[0], mask=np.ones(6, bool))
    probs = bandit.propensities(contexts[0], 50)
    assert probs.probs.shape == (4,) and abs(float(probs.probs.sum()) - 1.0) < 1e-12
    top = bandit.choose_top_k(contexts[0], 2)
    assert set(top.tolist()) <= {0, 2, 3, 4}
    play(bandit, contexts[6:12])
    path = tmp_path / "bandit.npz"
    bandit.save(path)
    loaded = Bandit.load(path, cat)  # built for 3 slots: grown to the saved 6 on load
    assert loaded.agent.spec.num_actions == 6 and loaded.action_ids.tolist() == [0, 2, 3, 4]
    for u, v in zip(jax.tree.leaves(bandit.state), jax.tree.leaves(loaded.state), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    for b in (bandit, loaded):
        b.retire([3], forget=True)
        assert b.add_action() == 5
    assert play(bandit, contexts[12:]) == play(loaded, contexts[12:])
    for u, v in zip(jax.tree.leaves(bandit.state), jax.tree.leaves(loaded.state), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    plain = Bandit(dts(prior, num_actions=3), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="^agent: add_action needs a catalogue"):
        plain.add_action()
