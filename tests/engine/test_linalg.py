"""Tests of the linear solvers in skbilevel.engine.linalg."""

import pytest
import torch

from skbilevel.engine.linalg import (CG, MINRES, DenseSolver, LinearSolveInfo, RecycledMINRES,
                                     RecycleSpace, make_linear_solver)

ALL = [CG, MINRES, RecycledMINRES, DenseSolver]
SYMMETRIC = [MINRES, RecycledMINRES, DenseSolver]  # the ones allowed an indefinite H


def _system(eigenvalues, seed=0):
    """Symmetric ``H`` with the given spectrum (random eigenvectors) and a random ``b``."""
    g = torch.Generator().manual_seed(seed)
    n = eigenvalues.shape[0]
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=eigenvalues.dtype))
    H = Q @ torch.diag(eigenvalues) @ Q.T
    return 0.5 * (H + H.T), torch.randn(n, generator=g, dtype=eigenvalues.dtype)


def _spd(n=60, cond=1e4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    ev = 1 + (cond - 1) * torch.rand(n, generator=g, dtype=dtype)
    ev[0], ev[-1] = 1.0, cond
    return _system(ev, seed)


def _indefinite(n=60, seed=0):
    ev = torch.cat([-torch.linspace(1, 100, n // 2 - 5, dtype=torch.float64),
                    torch.linspace(0.5, 300, n - n // 2 + 5, dtype=torch.float64)])
    return _system(ev, seed)


class Counter:
    """``v -> H v`` that counts its calls."""

    def __init__(self, H):
        self.H, self.calls = H, 0

    def __call__(self, v):
        assert v.dim() == 1
        self.calls += 1
        return self.H @ v


def _rel(x, y):
    return float(torch.linalg.vector_norm(x - y) / torch.linalg.vector_norm(y))


@pytest.mark.parametrize("cls", ALL)
def test_spd_matches_direct_solve(cls):
    H, b = _spd()
    x, info = cls()(Counter(H), b)
    assert isinstance(info, LinearSolveInfo) and info.converged
    assert x.dtype == b.dtype and x.shape == b.shape
    assert _rel(x, torch.linalg.solve(H, b)) < 1e-8
    assert info.residual <= 1e-10 * float(b.norm()) * (1 if cls is not DenseSolver else 1e3)


def test_preconditioned_cg_matches_direct_solve_in_few_iterations():
    # The preconditioner inverts H perturbed by 10 % (a sketch of it): M^-1 H has a
    # spectrum in [0.8, 1.25], so CG needs a handful of products where plain CG needs
    # dozens at condition number 1e4; the answer is the same, warm start or not.
    H, b = _spd()
    g = torch.Generator().manual_seed(3)
    E = torch.randn(60, 60, generator=g, dtype=torch.float64) / 60 ** 0.5
    root = torch.linalg.cholesky(H)
    M = root @ (torch.eye(60, dtype=torch.float64) + 0.1 * (E + E.T) / 2) @ root.T
    M_inv = torch.linalg.inv(M)
    plain = Counter(H)
    x_plain, info_plain = CG(rtol=1e-10)(plain, b)
    counted = Counter(H)
    x, info = CG(rtol=1e-10)(counted, b, preconditioner=lambda r: M_inv @ r)
    exact = torch.linalg.solve(H, b)
    assert info.converged and _rel(x, exact) < 1e-8 and _rel(x_plain, exact) < 1e-8
    assert info.n_iter <= 12 < info_plain.n_iter and counted.calls == info.n_matvec
    assert info.residual <= 1e-10 * float(b.norm())
    x_warm, info_warm = CG(rtol=1e-10)(Counter(H), b, x0=0.9 * exact,
                                       preconditioner=lambda r: M_inv @ r)
    assert _rel(x_warm, exact) < 1e-8 and info_warm.n_iter <= info.n_iter


@pytest.mark.parametrize("cls", SYMMETRIC)
def test_indefinite_matches_direct_solve(cls):
    H, b = _indefinite()
    x, info = cls()(Counter(H), b)
    assert info.converged
    assert _rel(x, torch.linalg.solve(H, b)) < 1e-8


@pytest.mark.parametrize("cls", ALL)
def test_float32(cls):
    H, b = _spd(n=40, cond=1e2, dtype=torch.float32)
    solver = cls() if cls is DenseSolver else cls(rtol=1e-6)
    x, info = solver(Counter(H), b)
    assert x.dtype == torch.float32 and info.converged
    assert _rel(x, torch.linalg.solve(H.double(), b.double()).float()) < 1e-4


@pytest.mark.parametrize("cls", ALL)
def test_warm_start_at_solution(cls):
    H, b = _spd()
    x_star = torch.linalg.solve(H, b)
    x, info = cls(rtol=1e-8)(Counter(H), b, x0=x_star) if cls is not DenseSolver \
        else cls()(Counter(H), b, x0=x_star)
    assert info.n_iter <= 1 and info.converged
    assert _rel(x, x_star) < 1e-8


def _sequence(n_systems=6):
    """Slowly changing SPD systems ``H_i = A^T A + alpha_i diag(s)`` with ``b_i`` drifting.

    Twenty columns of ``A`` are scaled by 1e-2..1e-1 and the rest by 5..10, so ``H`` has
    twenty small outlying eigenvalues (condition ~3e6): the spectrum recycling deflates.
    """
    g = torch.Generator().manual_seed(0)
    scales = torch.cat([torch.logspace(-2, -1, 20, dtype=torch.float64),
                        torch.linspace(5, 10, 180, dtype=torch.float64)])
    A = torch.randn(300, 200, generator=g, dtype=torch.float64) * scales
    G, s = A.T @ A, torch.rand(200, generator=g, dtype=torch.float64) + 0.5
    b0, b1 = (torch.randn(200, generator=g, dtype=torch.float64) for _ in range(2))
    return [(G + 1e-2 * 1.1 ** i * torch.diag(s), b0 + 0.05 * i * b1) for i in range(n_systems)]


def _solve_sequence(solver, systems):
    x, recycle, n_iter, n_matvec, xs = None, None, 0, 0, []
    for H, b in systems:
        counter = Counter(H)
        x, info = solver(counter, b, x0=x, recycle=recycle)
        assert info.converged and info.n_matvec == counter.calls
        recycle = info.recycle
        n_iter, n_matvec = n_iter + info.n_iter, n_matvec + info.n_matvec
        xs.append(x)
    return n_iter, n_matvec, xs


@pytest.fixture(scope="module")
def sequence_and_baseline():
    systems = _sequence()
    # 2n iterations are too few for this conditioning at rtol=1e-10, for both solvers.
    return systems, _solve_sequence(MINRES(rtol=1e-10, max_iter=3000), systems)


@pytest.mark.parametrize("ritz", ["harmonic", "plain"])
def test_recycling_saves_iterations_on_a_sequence(ritz, sequence_and_baseline):
    systems, (it0, mv0, xs0) = sequence_and_baseline
    it1, mv1, xs1 = _solve_sequence(
        RecycledMINRES(recycle_dim=20, ritz=ritz, rtol=1e-10, max_iter=3000), systems)
    print(f"\n[{ritz}] MINRES: {it0} iterations, {mv0} matvecs; RecycledMINRES(20): {it1} "
          f"iterations, {mv1} matvecs; savings {1 - it1 / it0:.0%} iterations, "
          f"{1 - mv1 / mv0:.0%} matvecs")
    assert it1 <= 0.7 * it0
    assert mv1 <= 0.85 * mv0
    for x0, x1, (H, b) in zip(xs0, xs1, systems):
        assert _rel(x1, x0) < 1e-8
        assert _rel(x1, torch.linalg.solve(H, b)) < 1e-8


@pytest.mark.parametrize("ritz", ["harmonic", "plain"])
def test_next_space_matches_explicit_ritz_problem(ritz):
    """The structured small problem equals the Ritz problem formed from ``Z`` and ``H Z``."""
    import numpy as np
    import scipy.linalg

    from skbilevel.engine.linalg._minres import _minres, pair_with_operator
    from skbilevel.engine.linalg._recycle import next_recycle_space

    ev = torch.cat([torch.linspace(0.01, 0.1, 8), torch.linspace(1, 3, 112)]).double()
    H, b = _system(ev, seed=3)
    U0 = torch.linalg.qr(torch.randn(120, 6, dtype=torch.float64))[0]
    U, C, _ = pair_with_operator(lambda v: H @ v, U0, b)
    assert torch.allclose(C.T @ C, torch.eye(6, dtype=C.dtype), atol=1e-12)
    assert torch.allclose(H @ U, C, atol=1e-10)
    # A loose tolerance keeps m small, so the Lanczos vectors stay orthonormal.
    tol = 1e-4 * float(b.norm())
    _, m, _, _, _, lanczos = _minres(lambda v: H @ v, b, torch.zeros_like(b), U, C, tol, 100,
                                     keep_basis=True)
    Z = torch.cat([U, torch.stack(lanczos["V"][:m], dim=1)], dim=1).numpy()
    HZ = H.numpy() @ Z
    if ritz == "harmonic":
        theta, Y = scipy.linalg.eig(HZ.T @ HZ, HZ.T @ Z)
    else:
        theta, Y = scipy.linalg.eig(Z.T @ HZ, Z.T @ Z)
    order = np.argsort(np.abs(theta.real))[:5]
    expected = np.linalg.qr(Z @ Y[:, order].real)[0]
    got = next_recycle_space(U, C, lanczos, 5, ritz).U.numpy()
    cosines = np.linalg.svd(expected.T @ got, compute_uv=False)
    assert cosines.min() > 1 - 1e-10


def test_recycle_space_is_passed_on():
    H, b = _spd()
    solver = RecycledMINRES(recycle_dim=7)
    x, info = solver(Counter(H), b, x0=None, recycle=None)
    U = info.recycle.U
    assert U.shape == (60, 7) and info.recycle.C is None
    assert torch.allclose(U.norm(dim=0), torch.ones(7, dtype=U.dtype))  # unit columns
    U = torch.linalg.qr(U)[0]
    # The space approximates the eigenvectors of the 7 smallest eigenvalues.
    E = torch.linalg.eigh(H).eigenvectors[:, :7]
    assert torch.linalg.svdvals(U.T @ E).min() > 0.9
    # Already solved: no Krylov iteration, the incoming space comes back (same span).
    _, info2 = solver(Counter(H), b, x0=torch.linalg.solve(H, b), recycle=info.recycle)
    assert info2.n_iter == 0 and info2.n_matvec == 7 + 1
    U2 = torch.linalg.qr(info2.recycle.U)[0]
    assert torch.linalg.svdvals(U2.T @ U).min() > 1 - 1e-10


def test_paired_space_serves_a_second_system_with_the_same_operator():
    H, b = _spd()
    b2 = torch.randn(b.shape, generator=torch.Generator().manual_seed(5), dtype=b.dtype)
    solver = RecycledMINRES(recycle_dim=7)
    _, info = solver(Counter(H), b)
    paired = info.paired_recycle
    # C = H U with orthonormal columns, from the Lanczos relation (no operator application).
    assert torch.allclose(paired.C, H @ paired.U, atol=1e-8)
    assert torch.allclose(paired.C.T @ paired.C, torch.eye(7, dtype=b.dtype), atol=1e-10)
    counter = Counter(H)
    x_paired, info_paired = solver(counter, b2, recycle=paired)
    x_fresh, info_fresh = solver(Counter(H), b2, recycle=info.recycle)
    # Same deflation, no pairing cost: exactly k fewer operator applications.
    assert info_paired.n_matvec == counter.calls == info_paired.n_iter
    assert info_fresh.n_matvec == info_fresh.n_iter + 7
    x_true = torch.linalg.solve(H, b2)
    for x in (x_paired, x_fresh):
        assert torch.linalg.vector_norm(x - x_true) <= 1e-8 * torch.linalg.vector_norm(x_true)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("warm", [False, True])
def test_matvec_count(cls, warm):
    H, b = _spd()
    x0 = torch.linalg.solve(H, b) + 1e-3 * torch.ones_like(b) if warm else None
    recycle = RecycleSpace(torch.linalg.qr(torch.randn(60, 5, dtype=torch.float64))[0])
    counter = Counter(H)
    _, info = cls()(counter, b, x0=x0, recycle=recycle)
    assert info.n_matvec == counter.calls
    if cls is not DenseSolver:
        extra = int(warm) + (5 if cls is RecycledMINRES else 0)
        assert info.n_matvec == info.n_iter + extra


def test_rank_deficient_recycle_space_and_breakdown():
    # Three distinct eigenvalues: Lanczos breaks down (happy breakdown) after 3 steps.
    ev = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64).repeat_interleave(10)
    H, b = _system(ev)
    x_star = torch.linalg.solve(H, b)
    # An exact eigenspace with two duplicated directions: the pairing must drop two columns,
    # and the deflated operator keeps three distinct eigenvalues.
    U = torch.linalg.eigh(H).eigenvectors[:, :3]
    U = torch.cat([U, U[:, :1], 2 * U[:, 1:2]], dim=1)
    for recycle in (None, RecycleSpace(U)):
        for ritz in ("harmonic", "plain"):
            counter = Counter(H)
            x, info = RecycledMINRES(recycle_dim=4, ritz=ritz)(counter, b, recycle=recycle)
            assert info.converged and info.n_iter <= 3 and info.n_matvec == counter.calls
            assert _rel(x, x_star) < 1e-10
            assert info.recycle is not None and 1 <= info.recycle.U.shape[1] <= 4
            assert torch.isfinite(info.recycle.U).all()


def test_indefinite_sequence_with_recycling():
    H, b = _indefinite()
    solver = RecycledMINRES(recycle_dim=10)
    _, info = solver(Counter(H), b)
    H2 = H + 1e-3 * torch.eye(60, dtype=H.dtype)
    x, info2 = solver(Counter(H2), b, recycle=info.recycle)
    assert info2.converged and info2.n_iter < info.n_iter
    assert _rel(x, torch.linalg.solve(H2, b)) < 1e-8


def test_dense_singular_falls_back_to_least_squares():
    H = torch.diag(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64))
    x, info = DenseSolver()(Counter(H), torch.tensor([2.0, 3.0, 0.0], dtype=torch.float64))
    assert torch.allclose(x, torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64))
    assert info.converged and info.n_matvec == 3
    _, info = DenseSolver()(Counter(H), torch.tensor([2.0, 3.0, 1.0], dtype=torch.float64))
    assert not info.converged and abs(info.residual - 1.0) < 1e-12


def test_max_iter_reached_is_not_converged():
    H, b = _spd()
    for cls in (CG, MINRES, RecycledMINRES):
        x, info = cls(max_iter=5)(Counter(H), b)
        assert info.n_iter == 5 and not info.converged and torch.isfinite(x).all()


@pytest.mark.parametrize("cls", [CG, MINRES, RecycledMINRES])
def test_non_finite_operator_stops(cls):
    H, b = _spd()
    counter = Counter(torch.full_like(H, float("nan")))
    _, info = cls()(counter, b)
    assert not info.converged and info.n_iter <= 1 and info.n_matvec == counter.calls

    calls = [0]

    def late_nan(v):  # finite for 8 calls, then NaN
        calls[0] += 1
        return H @ v if calls[0] <= 8 else torch.full_like(v, float("nan"))

    recycle = RecycleSpace(torch.linalg.qr(torch.randn(60, 3, dtype=torch.float64))[0])
    _, info = cls()(late_nan, b, recycle=recycle)
    assert not info.converged and info.n_iter <= 9


@pytest.mark.parametrize("cls", ALL)
def test_deterministic_and_zero_rhs(cls):
    H, b = _spd()
    recycle = RecycleSpace(torch.linalg.qr(torch.randn(60, 4, dtype=torch.float64))[0])
    x0 = torch.ones_like(b)
    x1, i1 = cls()(Counter(H), b, x0=x0, recycle=recycle)
    x2, i2 = cls()(Counter(H), b, x0=x0, recycle=recycle)
    assert torch.equal(x1, x2) and torch.equal(x0, torch.ones_like(b))
    assert (i1.n_iter, i1.n_matvec, i1.residual, i1.converged) == \
        (i2.n_iter, i2.n_matvec, i2.residual, i2.converged)
    if i1.recycle is not None:
        assert torch.equal(i1.recycle.U, i2.recycle.U)
    counter = Counter(H)
    x, info = cls()(counter, torch.zeros_like(b), x0=x0)
    assert torch.equal(x, torch.zeros_like(b)) and info.n_iter == 0 and counter.calls == 0
    assert info.converged and info.residual == 0.0


@pytest.mark.parametrize("cls, params, name", [
    (CG, {"rtol": -1.0}, "rtol"), (MINRES, {"atol": -1e-3}, "atol"),
    (CG, {"max_iter": 0}, "max_iter"), (RecycledMINRES, {"recycle_dim": 0}, "recycle_dim"),
    (RecycledMINRES, {"ritz": "exact"}, "ritz"), (RecycledMINRES, {"rtol": float("nan")}, "rtol"),
])
def test_bad_parameters(cls, params, name):
    with pytest.raises(ValueError, match=name):
        cls(**params)


def test_bad_inputs():
    H, b = _spd()
    with pytest.raises(ValueError, match="recycle"):
        RecycledMINRES()(Counter(H), b, recycle=RecycleSpace(torch.zeros(59, 2, dtype=b.dtype)))
    with pytest.raises(ValueError, match="x0"):
        MINRES()(Counter(H), b, x0=torch.zeros(3, dtype=b.dtype))
    with pytest.raises(ValueError, match="1-D"):
        CG()(Counter(H), b[:, None])


def test_make_linear_solver():
    assert isinstance(make_linear_solver("cg", rtol=1e-6), CG)
    assert isinstance(make_linear_solver("minres"), MINRES)
    solver = make_linear_solver("recycled_minres", recycle_dim=5, ritz="plain")
    assert isinstance(solver, RecycledMINRES) and solver.recycle_dim == 5
    assert isinstance(make_linear_solver("dense"), DenseSolver)
    with pytest.raises(ValueError, match="recycled_minres"):
        make_linear_solver("nope")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("cls", ALL)
def test_cuda(cls):
    H, b = _spd(n=40, cond=1e3)
    H, b = H.cuda(), b.cuda()
    solver = cls()
    x, info = solver(Counter(H), b, x0=torch.zeros_like(b))
    assert x.is_cuda and info.converged
    assert _rel(x, torch.linalg.solve(H, b)) < 1e-8
    if info.recycle is not None:
        assert info.recycle.U.is_cuda
        x, info = solver(Counter(H + 1e-3 * torch.eye(40, device="cuda", dtype=H.dtype)), b,
                         x0=x, recycle=info.recycle)
        assert x.is_cuda and info.converged


# -- solution snapshots and free re-pairing along a shifted path ----------------------------
def _shifted_path(n=80, n_systems=8, seed=0):
    """``(G + a_t I) x = b`` for a fixed ``b`` and a slowly moving shift ``a_t``."""
    G, b = _spd(n=n, cond=1e3, seed=seed)
    return G, b, [0.5 * 1.3 ** t for t in range(n_systems)]


def _identity_shift(old, new):
    """``diag(H(new) - H(old))`` for ``H(a) = G + a I`` (a scalar, broadcast)."""
    return (new - old).reshape(1)


def _run_path(solver, G, b, shifts, repair):
    """Solve the path warm-started; re-pair the space by the diagonal shift if ``repair``."""
    from skbilevel.engine.linalg import repair_recycle_space, tag_recycle_space

    x, space, iters, matvecs = None, None, 0, 0
    n = b.shape[0]
    for a in shifts:
        theta = torch.tensor([a], dtype=b.dtype)
        H = G + a * torch.eye(n, dtype=b.dtype)
        counter = Counter(H)
        if space is not None:
            space = repair_recycle_space(space, theta, (n,), _identity_shift) if repair \
                else space.unpaired()
        x, info = solver(counter, b, x0=x, recycle=space)
        assert info.converged and counter.calls == info.n_matvec
        assert _rel(x, torch.linalg.solve(H, b)) < 1e-7
        iters, matvecs = iters + info.n_iter, matvecs + info.n_matvec
        space = tag_recycle_space(info.paired_recycle, theta)
    return iters, matvecs


def test_repair_pairs_the_space_with_the_shifted_operator():
    from skbilevel.engine.linalg import repair_recycle_space, tag_recycle_space

    G, b, _ = _shifted_path()
    n = b.shape[0]
    H0, H1 = G + 0.5 * torch.eye(n, dtype=b.dtype), G + 0.8 * torch.eye(n, dtype=b.dtype)
    _, info = RecycledMINRES(recycle_dim=6, n_snapshots=3)(Counter(H0), b)
    space = tag_recycle_space(info.paired_recycle, torch.tensor([0.5], dtype=b.dtype))

    new = repair_recycle_space(space, torch.tensor([0.8], dtype=b.dtype), (n,), _identity_shift)
    assert torch.allclose(H1 @ new.U, new.C, atol=1e-10)
    assert torch.allclose(new.C.T @ new.C, torch.eye(new.dim, dtype=b.dtype), atol=1e-10)
    assert torch.allclose(H1 @ new.S, new.HS, atol=1e-10)
    assert new.S.shape[1] == 1 and float(new.tag) == 0.8


def test_snapshots_with_free_repairing_save_iterations_and_matvecs():
    G, b, shifts = _shifted_path()
    base_iters, base_matvecs = _run_path(MINRES(rtol=1e-10), G, b, shifts, repair=False)
    ritz_iters, _ = _run_path(RecycledMINRES(recycle_dim=5, rtol=1e-10), G, b, shifts,
                              repair=True)
    snap_iters, snap_matvecs = _run_path(RecycledMINRES(recycle_dim=5, n_snapshots=4,
                                                        rtol=1e-10), G, b, shifts, repair=True)
    # Along a shifted path the solutions span a small family: projecting onto the last
    # few solutions leaves MINRES far less to do than warm starting from the last one.
    assert snap_iters <= 0.6 * base_iters
    assert snap_iters < ritz_iters
    assert snap_matvecs <= 0.7 * base_matvecs


def test_snapshots_are_paired_by_matvecs_when_the_operator_is_unknown():
    G, b, shifts = _shifted_path(n_systems=3)
    k, s = 4, 2
    solver = RecycledMINRES(recycle_dim=k, n_snapshots=s, rtol=1e-10)
    x, space = None, None
    for t, a in enumerate(shifts):
        counter = Counter(G + a * torch.eye(b.shape[0], dtype=b.dtype))
        x, info = solver(counter, b, x0=x, recycle=space)
        assert info.recycle.C is None and info.recycle.S.shape[1] == min(t + 1, s)
        space = info.recycle
    # k + (snapshots) pairing + 1 initial residual + iterations + 1 for the new snapshot.
    assert info.n_matvec == k + s + 1 + info.n_iter + 1


def test_n_snapshots_validation():
    with pytest.raises(ValueError, match="n_snapshots"):
        RecycledMINRES(n_snapshots=-1)


def test_a_wrongly_paired_space_cannot_spoil_the_solution():
    # C is not H U (as after a drifted update): the true residual, which the snapshot's
    # H x gives for free, exposes it and the solve is finished without the space.
    G, b, _ = _shifted_path()
    n = b.shape[0]
    H = G + torch.eye(n, dtype=b.dtype)
    _, info = RecycledMINRES(recycle_dim=6, n_snapshots=2, rtol=1e-10)(Counter(G), b)
    wrong = info.paired_recycle  # paired with G, not with H
    counter = Counter(H)
    x, info = RecycledMINRES(recycle_dim=6, n_snapshots=2, rtol=1e-10)(counter, b,
                                                                       recycle=wrong)
    assert info.converged and counter.calls == info.n_matvec
    assert _rel(x, torch.linalg.solve(H, b)) < 1e-8
    assert info.paired_recycle.U.shape[1] == 0 and info.paired_recycle.S.shape[1] == 1


def test_solve_symmetric_factorises_or_falls_back_to_the_minimum_norm_solution():
    from skbilevel.engine.linalg._dense import solve_symmetric

    H, b = _spd(n=20, cond=1e3)
    x, factorised = solve_symmetric(H, b)
    assert factorised
    assert _rel(H @ x, b) < 1e-10
    # exactly singular (a repeated row and column, as duplicated features give): b in the
    # range gives the minimum-norm solution, orthogonal to the null space e_0 - e_1
    A = torch.randn(30, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    A = torch.cat([A[:, :1], A], dim=1)
    H = A.T @ A
    b = H @ torch.randn(7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x, factorised = solve_symmetric(H, b[:, None])
    assert not factorised and x.shape == (7, 1)
    assert _rel(H @ x[:, 0], b) < 1e-10
    assert abs(float(x[0, 0] - x[1, 0])) < 1e-10
