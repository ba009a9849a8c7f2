// AudioWorklet: microphone samples -> 640-sample chunks at 16 kHz, posted to the page.
//
// Runs on the audio thread, so capture never waits for the page. The context is opened at 16 kHz
// when the browser allows it; otherwise this resamples by linear interpolation (a live demo's
// compromise: the server's features equal the offline ones for the samples it is sent).
class ChunkProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.chunk = opts.chunk || 640;
    this.step = sampleRate / (opts.targetRate || 16000); // input samples per output sample
    this.buf = new Float32Array(this.chunk);
    this.fill = 0;
    this.pos = 0; // fractional read position into the current input block
    this.prev = 0; // last sample of the previous block (for interpolation across blocks)
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
    if (this.fill === this.chunk) {
      this.port.postMessage(this.buf, [this.buf.buffer]);
      this.buf = new Float32Array(this.chunk);
      this.fill = 0;
    }
  }
}

registerProcessor("chunker", ChunkProcessor);
