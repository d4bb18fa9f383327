// The softphone's microphone tap (an AudioWorklet): the AudioContext's rate brought down to
// the phone line's 8 kHz, posted to the page as 20 ms frames of 160 Int16 samples.
// Each 8 kHz sample is the mean of the input samples of its span (a box filter: enough of a
// low-pass for speech on a phone line), whatever the ratio (48000/8000, 44100/8000...).
"use strict";

const LINE_RATE = 8000;
const FRAME_SAMPLES = 160;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / LINE_RATE;  // input samples per line sample
    this.position = 0;
    this.until = this.step;
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i];
      this.count += 1;
      this.position += 1;
      if (this.position < this.until) continue;
      this.until += this.step;
      const mean = Math.max(-1, Math.min(1, this.sum / this.count));
      this.frame[this.filled++] = Math.round(mean * 32767);
      this.sum = 0;
      this.count = 0;
      if (this.filled === FRAME_SAMPLES) {
        this.port.postMessage(this.frame, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME_SAMPLES);
        this.filled = 0;
      }
    }
    if (this.position > 1e6) {  // keep the counters small and exact
      this.position -= 1e6;
      this.until -= 1e6;
    }
    return true;
  }
}

registerProcessor("capture", CaptureProcessor);
