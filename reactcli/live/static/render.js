// The listener's face drawn in the browser from 58 FaceVerse coefficients, with the server's face
// model (neutral shape, 52 expression displacements, triangles, albedo) and the official REACT
// camera and light (reactcli/render/camera.py): the same linear model, z-buffer and flat shading
// as `react render`, in plain JS into an ImageData (no WebGL needed, so it runs headless too).
export class FaceRenderer {
  static async load() {
    const meta = await (await fetch("/api/face-model")).json();
    const blob = await (await fetch("/api/face-model.bin")).arrayBuffer();
    return new FaceRenderer(meta, blob);
  }

  constructor(meta, blob) {
    const view = (name, Type) => {
      const part = meta.layout[name];
      const count = part.shape.reduce((a, b) => a * b, 1);
      return new Type(blob.slice(part.offset, part.offset + 4 * count));
    };
    this.meta = meta;
    this.neutral = view("neutral", Float32Array);
    this.basis = view("exp_basis", Float32Array); // (3V, 52) row-major
    this.albedo = view("albedo", Float32Array);
    this.tri = view("tri", Uint32Array);
    this.nv = meta.vertices;
    this.nf = meta.triangles;
    this.nexp = meta.layout.exp_basis.shape[1];
    this.world = new Float32Array(3 * this.nv);
    this.screen = new Float32Array(2 * this.nv);
    this.depth = new Float32Array(this.nv);
  }

  draw(canvas, coeffs) {
    const ctx = canvas.getContext("2d");
    const { nv, nf, nexp, neutral, basis, world, screen, depth, tri } = this;
    const cam = this.meta.camera;
    const light = this.meta.light;
    // vertices = neutral + basis @ exp; world = R v + t with R = Rz Ry Rx
    const [rx, ry, rz] = [coeffs[nexp], coeffs[nexp + 1], coeffs[nexp + 2]];
    const [tx, ty, tz] = [coeffs[nexp + 3], coeffs[nexp + 4], coeffs[nexp + 5]];
    const cx = Math.cos(rx), sx = Math.sin(rx), cy = Math.cos(ry), sy = Math.sin(ry);
    const cz = Math.cos(rz), sz = Math.sin(rz);
    // R = Rz @ Ry @ Rx written out
    const r00 = cz * cy, r01 = cz * sy * sx - sz * cx, r02 = cz * sy * cx + sz * sx;
    const r10 = sz * cy, r11 = sz * sy * sx + cz * cx, r12 = sz * sy * cx - cz * sx;
    const r20 = -sy, r21 = cy * sx, r22 = cy * cx;
    const scale = canvas.width / cam.size;
    const half = cam.size / 2, f = cam.focal_px;
    for (let v = 0; v < nv; v++) {
      const p = [0, 0, 0];
      for (let c = 0; c < 3; c++) {
        const row = 3 * v + c;
        let s = neutral[row];
        const base = row * nexp;
        for (let e = 0; e < nexp; e++) s += basis[base + e] * coeffs[e];
        p[c] = s;
      }
      const x = r00 * p[0] + r01 * p[1] + r02 * p[2] + tx;
      const y = r10 * p[0] + r11 * p[1] + r12 * p[2] + ty;
      const z = r20 * p[0] + r21 * p[1] + r22 * p[2] + tz;
      world[3 * v] = x; world[3 * v + 1] = y; world[3 * v + 2] = z;
      const d = cam.distance - z;
      depth[v] = d;
      screen[2 * v] = (half + (f * x) / d) * scale;
      screen[2 * v + 1] = (half - (f * y) / d) * scale;
    }
    // z-buffer rasterization at pixel centres (i + 0.5), perspective-correct depth via 1/z,
    // nearest triangle wins: the algorithm of reactcli/render/raster.py, one triangle at a time
    const W = canvas.width, H = canvas.height;
    if (!this.image || this.image.width !== W || this.image.height !== H) {
      this.image = ctx.createImageData(W, H);
      this.zbuf = new Float32Array(W * H);
    }
    const px = new Uint32Array(this.image.data.buffer);
    px.fill(0xff000000); // opaque black background (little-endian ABGR)
    const zbuf = this.zbuf;
    zbuf.fill(Infinity);
    for (let t = 0; t < nf; t++) {
      const a = tri[3 * t], b = tri[3 * t + 1], c = tri[3 * t + 2];
      const za = depth[a], zb = depth[b], zc = depth[c];
      if (za <= cam.znear || zb <= cam.znear || zc <= cam.znear || za >= cam.zfar) continue;
      const x0 = screen[2 * a], y0 = screen[2 * a + 1], x1 = screen[2 * b], y1 = screen[2 * b + 1];
      const x2 = screen[2 * c], y2 = screen[2 * c + 1];
      const area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0);
      if (!(Math.abs(area) > 1e-12)) continue;
      const i0 = Math.max(0, Math.ceil(Math.min(x0, x1, x2) - 0.5));
      const i1 = Math.min(W - 1, Math.floor(Math.max(x0, x1, x2) - 0.5));
      const j0 = Math.max(0, Math.ceil(Math.min(y0, y1, y2) - 0.5));
      const j1 = Math.min(H - 1, Math.floor(Math.max(y0, y1, y2) - 0.5));
      if (i0 > i1 || j0 > j1) continue;
      const colour = this.shade(t, a, b, c, light);
      const inv = 1 / area, eps = 1e-5;
      const iza = 1 / za, izb = 1 / zb, izc = 1 / zc;
      for (let j = j0; j <= j1; j++) {
        const cy = j + 0.5;
        for (let i = i0; i <= i1; i++) {
          const cx = i + 0.5;
          const w0 = ((x1 - cx) * (y2 - cy) - (y1 - cy) * (x2 - cx)) * inv;
          const w1 = ((x2 - cx) * (y0 - cy) - (y2 - cy) * (x0 - cx)) * inv;
          const w2 = 1 - w0 - w1;
          if (w0 < -eps || w1 < -eps || w2 < -eps) continue;
          const z = 1 / (w0 * iza + w1 * izb + w2 * izc);
          const k = j * W + i;
          if (z < zbuf[k]) { zbuf[k] = z; px[k] = colour; }
        }
      }
    }
    ctx.putImageData(this.image, 0, 0);
  }

  // flat shading as pytorch3d's HardFlatShader: albedo * (ambient + diffuse * max(0, n . l)), packed ABGR
  shade(t, a, b, c, light) {
    const { world, albedo } = this;
    const ax = world[3 * a], ay = world[3 * a + 1], az = world[3 * a + 2];
    const ux = world[3 * b] - ax, uy = world[3 * b + 1] - ay, uz = world[3 * b + 2] - az;
    const vx = world[3 * c] - ax, vy = world[3 * c + 1] - ay, vz = world[3 * c + 2] - az;
    let nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    const nn = Math.hypot(nx, ny, nz) || 1e-12;
    nx /= nn; ny /= nn; nz /= nn;
    const mx = (ax + world[3 * b] + world[3 * c]) / 3, my = (ay + world[3 * b + 1] + world[3 * c + 1]) / 3;
    const mz = (az + world[3 * b + 2] + world[3 * c + 2]) / 3;
    let lx = light.position[0] - mx, ly = light.position[1] - my, lz = light.position[2] - mz;
    const ll = Math.hypot(lx, ly, lz) || 1e-12;
    lx /= ll; ly /= ll; lz /= ll;
    const lit = light.ambient + light.diffuse * Math.max(0, nx * lx + ny * ly + nz * lz);
    const ch = (k) => Math.round(255 * Math.min(1, Math.max(0, albedo[3 * t + k] * lit)));
    return (0xff000000 | (ch(2) << 16) | (ch(1) << 8) | ch(0)) >>> 0;
  }
}
