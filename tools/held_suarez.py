"""Physically simulated training fields: the Held-Suarez test on a real dynamical core.

Runs the dry primitive equations of `dinosaur` (JAX, CPU) under Held-Suarez (1994)
forcing -- Newtonian relaxation to a zonally symmetric radiative-equilibrium
temperature and Rayleigh friction near the surface -- which develops jets, a Hadley
cell and baroclinic eddies. After a spin-up it writes snapshots of near-surface
temperature, wind (u, v) and surface pressure on an equiangular grid (T85 gives
exactly cra5codec's 128 x 256) to a Zarr store that ``cra5codec train`` can read like
any other reanalysis file.

It is an optional addition to the real data: the issue asks to use it only where it
measurably helps on the real-ERA5 validation split. Its output is never committed.

Install (its own environment: dinosaur pins its own JAX)::

    python -m venv .venv-hs && .venv-hs/bin/pip install -r tools/requirements-held-suarez.txt

Usage::

    .venv-hs/bin/python tools/held_suarez.py --out runs/held_suarez.zarr \\
        [--truncation 85] [--spinup-truncation 42] [--spinup-days 100] [--days 30] [--every-hours 24]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def build(truncation: int, layers: int, dt_minutes: float, seed: int):
    """(step function, initial state, coords, physics specs, reference temperatures)."""
    import jax
    from dinosaur import (coordinate_systems, held_suarez, primitive_equations, primitive_equations_states,
                          sigma_coordinates, spherical_harmonic, time_integration, units, xarray_utils)
    from dinosaur.scales import units as u

    specs = units.SimUnits.from_si()
    # quadratic dealiasing: 3 * T + 1 longitudes, half as many latitudes, equally spaced
    grid = spherical_harmonic.Grid.with_wavenumbers(truncation, latitude_spacing="equiangular")
    coords = coordinate_systems.CoordinateSystem(grid, sigma_coordinates.SigmaCoordinates.equidistant(layers))
    init_fn, aux = primitive_equations_states.isothermal_rest_atmosphere(
        coords, specs, p0=1e5 * u.pascal, p1=5e3 * u.pascal)
    state = init_fn(rng_key=jax.random.PRNGKey(seed))  # small random pressure perturbation
    ref_temps = aux[xarray_utils.REF_TEMP_KEY]
    orography = primitive_equations.truncated_modal_orography(aux[xarray_utils.OROGRAPHY], coords)
    equations = time_integration.compose_equations([
        primitive_equations.PrimitiveEquationsSigma(ref_temps, orography, coords, specs),
        held_suarez.HeldSuarezForcingSigma(coords, specs, ref_temps)])
    dt = specs.nondimensionalize(dt_minutes * u.minute)
    step = time_integration.step_with_filters(
        time_integration.imex_rk_sil3(equations, dt),
        [time_integration.exponential_step_filter(grid, dt)])  # damps the smallest scales
    return step, state, coords, specs, ref_temps


def upsample(state, coords):
    """A spectral state -> the same state at ``coords``' higher truncation: the modal
    coefficients (ordered m = 0, 1, -1, 2, -2, ... and l = 0, 1, ... at every
    truncation) are copied and the new wavenumbers start at zero, so the spin-up can
    run at a coarse truncation and the snapshots at a fine one."""
    import jax
    import jax.numpy as jnp

    shape = coords.horizontal.modal_shape

    def pad(a):
        if jnp.ndim(a) < 2:  # e.g. the simulation time
            return a
        out = jnp.zeros(a.shape[:-2] + shape, a.dtype)
        return out.at[..., :a.shape[-2], :a.shape[-1]].set(a)

    return jax.tree_util.tree_map(pad, state)


def surface_fields(state, coords, specs, ref_temps) -> dict[str, np.ndarray]:
    """Lowest-level temperature and wind, and surface pressure, as (lat, lon) arrays,
    north to south like ERA5."""
    from dinosaur import spherical_harmonic
    from dinosaur.scales import units as u

    grid = coords.horizontal
    t = grid.to_nodal(state.temperature_variation)[-1] + ref_temps[-1]
    uu, vv = spherical_harmonic.vor_div_to_uv_nodal(grid, state.vorticity, state.divergence)
    ps = np.exp(grid.to_nodal(state.log_surface_pressure)[0])
    speed = specs.dimensionalize(1.0, u.meter / u.second).magnitude
    pressure = specs.dimensionalize(1.0, u.pascal).magnitude
    temperature = specs.dimensionalize(1.0, u.degK).magnitude
    out = {"t": np.asarray(t) * temperature, "u": np.asarray(uu[-1]) * speed,
           "v": np.asarray(vv[-1]) * speed, "sp": np.asarray(ps) * pressure}
    # dinosaur's nodal arrays are (lon, lat), latitudes south to north
    return {k: v.T[::-1].astype(np.float32) for k, v in out.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="Zarr store to write (not inside the repository)")
    p.add_argument("--truncation", type=int, default=85, help="spectral truncation T (85: 128 x 256 grid)")
    p.add_argument("--layers", type=int, default=20, help="sigma levels (default: %(default)s)")
    p.add_argument("--dt-minutes", type=float, default=10.0, help="time step (default: %(default)s)")
    p.add_argument("--spinup-days", type=float, default=100.0, help="days simulated before the first snapshot")
    p.add_argument("--spinup-truncation", type=int, default=42,
                   help="truncation of the spin-up (cheaper; the state is then upsampled to --truncation)")
    p.add_argument("--spinup-dt-minutes", type=float, default=20.0, help="time step of the spin-up")
    p.add_argument("--days", type=float, default=30.0, help="days of snapshots after the spin-up")
    p.add_argument("--every-hours", type=float, default=24.0, help="hours between snapshots")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import jax
    import xarray as xr
    from dinosaur import time_integration

    t0 = time.time()
    step, state, coords, specs, ref_temps = build(args.spinup_truncation, args.layers, args.spinup_dt_minutes,
                                                  args.seed)
    spin = jax.jit(time_integration.repeated(step, max(1, round(24 * 60 / args.spinup_dt_minutes))))
    for _ in range(round(args.spinup_days)):
        state = spin(state)
    jax.block_until_ready(state)  # JAX dispatches asynchronously: time the work, not the call
    print(f"spin-up of {args.spinup_days} days at T{args.spinup_truncation}: {time.time() - t0:.0f} s", flush=True)
    step, _, coords, specs, ref_temps = build(args.truncation, args.layers, args.dt_minutes, args.seed)
    if args.truncation != args.spinup_truncation:
        state = upsample(state, coords)
    per_snapshot = max(1, round(args.every_hours * 60 / args.dt_minutes))
    advance = jax.jit(time_integration.repeated(step, per_snapshot))
    snaps = []
    for i in range(round(args.days * 24 / args.every_hours)):
        state = advance(state)
        snaps.append(surface_fields(state, coords, specs, ref_temps))
        if not all(np.isfinite(v).all() for v in snaps[-1].values()):
            raise SystemExit(f"the simulation blew up at snapshot {i}; lower --dt-minutes")
    nlat, nlon = snaps[0]["t"].shape
    lat = 90 - (np.arange(nlat) + 0.5) * 180 / nlat
    lon = np.arange(nlon) * 360 / nlon
    hours = args.spinup_days * 24 + args.every_hours * (np.arange(len(snaps)) + 1)
    ds = xr.Dataset({k: (("time", "latitude", "longitude"), np.stack([s[k] for s in snaps])) for k in snaps[0]},
                    coords={"time": hours, "latitude": lat, "longitude": lon},
                    attrs={"source": "Held-Suarez (1994) dry primitive equations, dinosaur "
                                     f"T{args.truncation} L{args.layers}, dt {args.dt_minutes} min",
                           "note": "simulated, not observed: for training augmentation only"})
    # CF time: a nominal epoch stands for the isothermal rest start of the simulation
    ds.time.attrs.update(units="hours since 2000-01-01 00:00:00", long_name="simulated time since the rest start")
    for k, units in {"t": "K", "u": "m s-1", "v": "m s-1", "sp": "Pa"}.items():
        ds[k].attrs["units"] = units
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    ds.to_zarr(args.out, mode="w")
    print(f"wrote {len(snaps)} snapshots of {nlat} x {nlon} to {args.out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
