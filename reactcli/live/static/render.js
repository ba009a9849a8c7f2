// The listener's face drawn in the browser from 58 FaceVerse coefficients, with the server's face
// model (neutral shape, 52 expression displacements, triangles, albedo) and the official REACT
// camera and light (reactcli/render/camera.py): the same linear model and flat shading as
// `react render`, painted back to front on a 2-D canvas instead of z-buffered.
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
    this.order = new Uint32Array(this.nf);
    this.keys = new Float32Array(this.nf);
  }

  draw(canvas, coeffs) {
    const ctx = canvas.getContext("2d");
    const { nv, nf, nexp, neutral, basis, world, screen, depth, tri, albedo } = this;
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
    let count = 0;
    for (let t = 0; t < nf; t++) {
      const a = tri[3 * t], b = tri[3 * t + 1], c = tri[3 * t + 2];
      if (depth[a] <= cam.znear || depth[b] <= cam.znear || depth[c] <= cam.znear) continue;
      this.keys[t] = depth[a] + depth[b] + depth[c];
      this.order[count++] = t;
    }
    const order = Array.from(this.order.subarray(0, count)).sort((p, q) => this.keys[q] - this.keys[p]);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (const t of order) {
      const a = tri[3 * t], b = tri[3 * t + 1], c = tri[3 * t + 2];
      // flat shading as pytorch3d's HardFlatShader: albedo * (ambient + diffuse * max(0, n . l))
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
      const col = (k) => Math.round(255 * Math.min(1, Math.max(0, albedo[3 * t + k] * lit)));
      const style = `rgb(${col(0)},${col(1)},${col(2)})`;
      ctx.fillStyle = style;
      ctx.strokeStyle = style;
      ctx.beginPath();
      ctx.moveTo(screen[2 * a], screen[2 * a + 1]);
      ctx.lineTo(screen[2 * b], screen[2 * b + 1]);
      ctx.lineTo(screen[2 * c], screen[2 * c + 1]);
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
    }
  }
}
