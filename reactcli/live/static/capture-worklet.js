// AudioWorklet: microphone samples -> one video frame's samples per row at 16 kHz, posted to the page.
//
// Frame t holds the samples [floor(t rate / fps), floor((t + 1) rate / fps)): 640 at 25 fps, 533 or
// 534 at 30 fps (the offline features' frame boundaries, reactcli/live/protocol.py). Each row has
// `width` slots; a frame with fewer samples leaves zeros after them, as the server expects.
// Runs on the audio thread, so capture never waits for the page. The context is opened at 16 kHz
// when the browser allows it; otherwise this resamples by linear interpolation (a live demo's
// compromise: the server's features equal the offline ones for the samples it is sent).
class ChunkProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.rate = opts.targetRate || 16000;
    this.fps = opts.fps || 25;
    this.width = opts.width || Math.ceil(this.rate / this.fps);
    this.step = sampleRate / this.rate; // input samples per output sample
    this.frame = 0; // index of the frame being filled
    this.need = this.samplesOf(0);
    this.buf = new Float32Array(this.width);
    this.fill = 0;
    this.pos = 0; // fractional read position into the current input block
    this.prev = 0; // last sample of the previous block (for interpolation across blocks)
  }

  // exact integer frame boundaries: floor((t + 1) rate / fps) - floor(t rate / fps)
  samplesOf(t) {
    return Math.floor(((t + 1) * this.rate) / this.fps) - Math.floor((t * this.rate) / this.fps);
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const x = input[0];
    if (this.step === 1) {
      for (let i = 0; i < x.length; i++) this.push(x[i]);
    } else {
      while (this.pos < x.length) {
        const i = Math.floor(this.pos);
        const frac = this.pos - i;
        const a = i === 0 ? this.prev : x[i - 1];
        const b = x[i];
        this.push(a + (b - a) * frac);
        this.pos += this.step;
      }
      this.pos -= x.length;
      this.prev = x[x.length - 1];
    }
    return true;
  }

  push(v) {
    this.buf[this.fill++] = v;
    if (this.fill === this.need) {
      this.port.postMessage(this.buf, [this.buf.buffer]);
      this.buf = new Float32Array(this.width); // zeros after the frame's own samples
      this.fill = 0;
      this.frame++;
      this.need = this.samplesOf(this.frame);
    }
  }
}

registerProcessor("chunker", ChunkProcessor);
