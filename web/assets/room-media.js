// Local media of the conference page: camera and microphone capture with device
// choice, a microphone level meter, and screen capture. Owns MediaStreams and the
// pickers' contents; never talks to the server.
//
//   const local = new LocalMedia({ width: 640, height: 360, frameRate: 30 });
//   await local.open({ cameraId, micId });   // (re)captures; local.stream holds both tracks
//   await local.listDevices();               // [{ kind, deviceId, label }]
//   local.setEnabled('audio', false);        // mute: track.enabled, the track keeps running
//   const screen = await captureScreen();    // getDisplayMedia

/** The constraints for one capture; `deviceId` pins the device when one was picked. */
function videoConstraints({ width, height, frameRate }, deviceId) {
  // max as well: a camera (or Chromium's fake one) that runs faster is decimated to the rate asked for
  const c = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: frameRate, max: frameRate } };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

function audioConstraints(deviceId) {
  const c = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

export class LocalMedia {
  constructor(capture) {
    this.capture = capture;
    this.stream = null;
    this.enabled = { audio: true, video: true };
    this.error = null; // what went wrong with the last capture, or null
  }

  /** Needs https:// or http://localhost, like every capture API. */
  static supported() {
    return Boolean(navigator.mediaDevices?.getUserMedia);
  }

  /**
   * Captures camera and microphone (the given devices, else the defaults). Falls back to
   * whichever of the two works when the other is missing or refused. Replaces
   * this.stream and stops the tracks it replaced. Returns the stream (possibly with one
   * track, or null when neither could be opened; this.error then says why).
   */
  async open({ cameraId, micId } = {}) {
    const attempts = [
      { audio: audioConstraints(micId), video: videoConstraints(this.capture, cameraId) },
      { video: videoConstraints(this.capture, cameraId) },
      { audio: audioConstraints(micId) },
    ];
    let stream = null;
    let firstError = null;
    for (const constraints of attempts) {
      try {
        stream = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (err) {
        firstError ??= err;
        // a refusal covers every device: do not ask again
        if (err?.name === 'NotAllowedError' || err?.name === 'SecurityError') break;
      }
    }
    this.release();
    this.stream = stream;
    this.error = stream && stream.getTracks().length === 2 ? null : firstError;
    if (stream) {
      for (const t of stream.getTracks()) t.enabled = this.enabled[t.kind];
      const video = stream.getVideoTracks()[0];
      if (video && 'contentHint' in video) video.contentHint = 'motion';
    }
    return stream;
  }

  track(kind) {
    return this.stream?.getTracks().find((t) => t.kind === kind) ?? null;
  }

  /** The deviceId of the track of `kind` now captured, or ''. */
  deviceId(kind) {
    return this.track(kind)?.getSettings?.().deviceId ?? '';
  }

  /** Mute (false) or unmute (true): the track stays live, it sends silence / black frames. */
  setEnabled(kind, on) {
    this.enabled[kind] = on;
    const t = this.track(kind);
    if (t) t.enabled = on;
  }

  /** Cameras and microphones; labels are empty until capture was allowed once. */
  async listDevices() {
    if (!navigator.mediaDevices?.enumerateDevices) return [];
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices
      .filter((d) => d.kind === 'videoinput' || d.kind === 'audioinput')
      .map((d, i) => ({ kind: d.kind, deviceId: d.deviceId, label: d.label || `${d.kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}` }));
  }

  release() {
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
  }
}

/** Fills a <select> with devices of `kind`, keeping `current` selected when present. */
export function fillDeviceSelect(select, devices, kind, current) {
  const options = devices
    .filter((d) => d.kind === kind && d.deviceId)
    .map((d) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label;
      return o;
    });
  if (!options.length) {
    const o = document.createElement('option');
    o.value = '';
    o.textContent = kind === 'videoinput' ? 'No camera' : 'No microphone';
    options.push(o);
  }
  select.replaceChildren(...options);
  select.disabled = options.length < 2 && !options[0].value;
  if (current && options.some((o) => o.value === current)) select.value = current;
}

/**
 * A level meter for the microphone: sets `--level` (0…1) on `element` about 20 times a
 * second. Returns a function that stops it. Without Web Audio it does nothing.
 */
export function meterLevel(track, element) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!track || !Ctx) return () => {};
  let ctx;
  try {
    ctx = new Ctx();
  } catch {
    return () => {};
  }
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  let running = true;
  // a context created without a user gesture starts suspended; a click resumes it
  const resume = () => ctx.resume().catch(() => {});
  document.addEventListener('click', resume, { once: true });
  const timer = setInterval(() => {
    if (!running) return;
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    const rms = Math.sqrt(sum / buf.length);
    // dBFS → 0…1 over −60…0 dB
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const level = track.enabled ? Math.max(0, Math.min(1, (db + 60) / 60)) : 0;
    element.style.setProperty('--level', level.toFixed(2));
  }, 50);
  return () => {
    running = false;
    clearInterval(timer);
    document.removeEventListener('click', resume);
    element.style.setProperty('--level', '0');
    ctx.close().catch(() => {});
  };
}

/** Asks for a screen, window or tab; rejects when the user cancels. */
export async function captureScreen() {
  if (!navigator.mediaDevices?.getDisplayMedia) {
    throw new Error('This browser cannot share its screen.');
  }
  const stream = await navigator.mediaDevices.getDisplayMedia({
    video: { frameRate: { ideal: 15, max: 30 } },
    audio: false,
  });
  const video = stream.getVideoTracks()[0];
  if (video && 'contentHint' in video) video.contentHint = 'detail';
  return stream;
}
