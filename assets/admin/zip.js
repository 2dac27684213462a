// A minimal zip writer for deploying a dropped folder: the browser deflates each file with
// its own CompressionStream("deflate-raw"), so no library is needed. No zip64: a deploy is
// far below 4 GiB (FAZT_MAX_UPLOAD).
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function deflate(bytes) {
  if (typeof CompressionStream === "undefined") return null;
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function header(size, fields) {
  const buf = new DataView(new ArrayBuffer(size));
  let at = 0;
  for (const [bytes, value] of fields) {
    if (bytes === 2) buf.setUint16(at, value, true);
    else buf.setUint32(at, value, true);
    at += bytes;
  }
  return new Uint8Array(buf.buffer);
}

// files: [{path, file: Blob}] → a zip Blob. `onFile(i)` reports progress.
export async function makeZip(files, onFile = () => {}) {
  const parts = [], central = [];
  const enc = new TextEncoder();
  const now = new Date();
  const time = (now.getHours() << 11) | (now.getMinutes() << 5) | (now.getSeconds() >> 1);
  const date = ((now.getFullYear() - 1980) << 9) | ((now.getMonth() + 1) << 5) | now.getDate();
  let offset = 0;
  for (const [i, { path, file }] of files.entries()) {
    const data = new Uint8Array(await file.arrayBuffer());
    const packed = await deflate(data);
    const useDeflate = packed && packed.length < data.length;
    const body = useDeflate ? packed : data;
    const name = enc.encode(path);
    const crc = crc32(data);
    const common = [[2, 20], [2, 0x0800], [2, useDeflate ? 8 : 0], [2, time], [2, date], [4, crc], [4, body.length], [4, data.length], [2, name.length], [2, 0]];
    const local = header(30, [[4, 0x04034b50], ...common]);
    parts.push(local, name, body);
    central.push(header(46, [[4, 0x02014b50], [2, 20], ...common, [2, 0], [2, 0], [2, 0], [4, 0], [4, offset]]), name);
    offset += local.length + name.length + body.length;
    onFile(i + 1);
  }
  const cdSize = central.reduce((n, p) => n + p.length, 0);
  const end = header(22, [[4, 0x06054b50], [2, 0], [2, 0], [2, files.length], [2, files.length], [4, cdSize], [4, offset], [2, 0]]);
  return new Blob([...parts, ...central, end], { type: "application/zip" });
}

// The files under a dropped directory entry, with paths relative to it (its contents go
// at the zip's root, as `fazt deploy DIR` does).
export async function filesOfEntry(entry, prefix = "") {
  if (entry.isFile) {
    const file = await new Promise((ok, fail) => entry.file(ok, fail));
    return [{ path: prefix + entry.name, file }];
  }
  const reader = entry.createReader();
  const children = [];
  // readEntries answers in batches until an empty one.
  for (;;) {
    const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map((c) => filesOfEntry(c, c.isDirectory ? prefix + c.name + "/" : prefix)));
  return nested.flat();
}
