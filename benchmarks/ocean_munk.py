"""Munk (1950) western boundary layer in the reduced-gravity ocean (issue 12, not yet a
test): beta-plane box 3000 km, dx 20 km, one layer with c = 60 m/s, momentum advection off,
no-slip walls, tau = -0.1 cos(pi y / L), wind ramped over 5 days, AB3 at dt 80 s, float64.

    python benchmarks/ocean_munk.py A_H DAYS   # e.g. 4320 120 (about 6 min on 2 cores)

Prints the first zero of v at mid-basin in units of delta_M = (A_H / beta)^(1/3) (Munk: 3.63)
and the wall-to-x transports against the interior Sverdrup transport from x to the east wall
(Munk: 1.163 at the first zero). Raw output: benchmarks/results/ocean_munk_4320_120d.txt.
"""
import jax, jax.numpy as jnp, numpy as np, time, sys
jax.config.update("jax_enable_x64", True)
from esm.ocean import grid as og, dynamics as od
from esm.core import time_integration as ti, parameters as P, rollout
import equinox as eqx
A = float(sys.argv[1]) if len(sys.argv)>1 else 4320.0
days = float(sys.argv[2]) if len(sys.argv)>2 else 30
L=3.0e6; dx=20e3; f0=1e-4; beta=2e-11; H=1000.0; gp=3.6
g = og.beta_plane_box(L, L, dx, f0, beta)
taux = -0.1*np.cos(np.pi*g.lat/L)[:,None]*np.ones((1,g.shape[1]))
class Ramp(eqx.Module):
    base: od.MonthlyForcing
    ramp: float = eqx.field(static=True)
    def __call__(self, t):
        f = self.base(t); w = jnp.minimum(t/self.ramp, 1.0)
        return jax.tree.map(lambda a: w*a, f)
dt=80.0
forc = Ramp(od.steady_forcing(g, wind_stress_x=taux, dtype="float64"), 5*86400.0)
eq = od.ReducedGravityOcean(g, (gp,), (H,), forc, dt=dt, momentum_advection=False, thermodynamics=False, no_slip=True, dtype="float64")
params = P.default_values(od.DECLARATIONS, {"ocean.laplacian_viscosity": A}, dtype="float64")
st = ti.make_stepper("ab3", eq, dt)
carry = st.init(eq.rest_state(), params)
n = int(days*86400/dt)
run = jax.jit(lambda c, p: rollout.advance(st.step, c, p, n))
t0=time.time(); carry = run(carry, params); jax.block_until_ready(carry); print("wall", time.time()-t0)
s = carry.state
delta = (A/beta)**(1/3)
j = g.shape[0]//2
v = np.asarray(s.v[0, j]); hv = 0.5*np.asarray(s.h[0, j-1]+s.h[0, j])
x = g.lon  # centres, m
k = np.argmax(v[1:] < 0)+1  # first index where v<0 after wall
x0 = x[k-1] + (x[k]-x[k-1])*v[k-1]/(v[k-1]-v[k])
print("delta", delta/1e3, "x0/delta", x0/delta, "expected 3.628")
flux = v*hv*dx
curl = -0.1*np.pi/L*np.sin(np.pi*0.5)  # at mid
sv_density = curl/(1025*beta)  # m^2/s per m of x
def transport_to(xe):
    w = np.clip((xe - (x-dx/2))/dx, 0, 1)
    return np.sum(flux*w)
Tx0 = transport_to(x0); T6 = transport_to(6*delta)
print("T(x0)/Sv_interior", Tx0/(-sv_density*(L-x0)), "expect 1.163; /Sv_total", Tx0/(-sv_density*L))
print("T(6d)/Sv_interior", T6/(-sv_density*(L-6*delta)), "/Sv_total", T6/(-sv_density*L))
print("total flux", flux.sum()/1e6, "Sv; Sverdrup", -sv_density*L/1e6)
print("max eta", float(np.abs(s.h-H).max()))
print("v[:20]", np.round(v[:20]*100,2))
print("v interior mean (cm/s)", v[40:140].mean()*100, "expected", sv_density/H*100)
ym = np.asarray(s.h[0]).mean(1)-H
print("zonal mean eta rows", np.round(ym[::15],3))
