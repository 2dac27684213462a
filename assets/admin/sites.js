// Sites: the list, each site's deployments with rollback and its app's environment and
// logs, delete with the name typed, and a deploy by dropping a folder or a zip (uploaded
// to /api/deploy like `fazt deploy`).
import { get, post, del, upload } from "./api.js";
import { h, put, section, table, fmtBytes, fmtNum, fmtTime, status, confirmTyped } from "./ui.js";
import { makeZip, filesOfEntry } from "./zip.js";
import { envPanel, logsPanel } from "./apps.js";

const PERMANENT = new Set(["root", "404"]);
const isZip = (file) => /\.zip$/i.test(file.name) || file.type === "application/zip";

function deployForm(sites, refresh) {
  const name = h("input", { id: "deploy-site", required: true, pattern: "[a-z0-9]([a-z0-9-]*[a-z0-9])?", autocomplete: "off", list: "site-names", value: sites.length === 1 ? sites[0].name : "" });
  const names = h("datalist", { id: "site-names" }, sites.map((s) => h("option", { value: s.name })));
  const bar = h("progress", { id: "deploy-progress", max: 1, value: 0, hidden: true });
  const msg = status();
  const zipInput = h("input", { type: "file", id: "deploy-zip", accept: ".zip,application/zip" });
  const dirInput = h("input", { type: "file", id: "deploy-dir", webkitdirectory: true, multiple: true });
  const drop = h("div", { class: "drop", id: "drop", tabindex: 0, role: "group", "aria-label": "Drop a folder or a zip here" },
    "Drop a folder or a .zip here, or choose one: ",
    h("div", { class: "row" }, h("label", {}, "Zip file ", zipInput), h("label", {}, "Folder ", dirInput)));

  async function deploy(files) {
    msg.clear();
    if (!name.reportValidity()) return;
    try {
      let zip;
      if (files.length === 1 && isZip(files[0].file)) zip = files[0].file;
      else {
        if (!files.length) throw new Error("That folder has no files.");
        msg.ok(`Zipping ${files.length} files…`);
        zip = await makeZip(files);
      }
      const form = new FormData();
      form.append("site_name", name.value.trim().toLowerCase());
      form.append("file", zip, "site.zip");
      bar.hidden = false;
      bar.value = 0;
      msg.ok(`Uploading ${fmtBytes(zip.size)}…`);
      const r = await upload("/api/deploy", form, (share) => (bar.value = share));
      bar.value = 1;
      msg.ok(`${r.message} (${fmtBytes(r.bytes)}, ${fmtBytes(r.new_bytes)} new): ${r.url}${r.warning ? ". " + r.warning : ""}`);
      await refresh(r.site);
    } catch (err) {
      msg.fail(err);
    }
  }

  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    if (entries.length === 1 && entries[0].isDirectory) return deploy(await filesOfEntry(entries[0]));
    const files = await Promise.all(entries.map((en) => filesOfEntry(en)));
    deploy(files.flat().length ? files.flat() : [...e.dataTransfer.files].map((file) => ({ path: file.name, file })));
  });
  zipInput.addEventListener("change", () => zipInput.files[0] && deploy([{ path: zipInput.files[0].name, file: zipInput.files[0] }]));
  // webkitRelativePath is "folder/sub/file": the folder's contents go at the root.
  dirInput.addEventListener("change", () => deploy([...dirInput.files].map((file) => ({ path: file.webkitRelativePath.split("/").slice(1).join("/"), file }))));
  return section("Deploy", "deploy", h("label", {}, "Site name ", name), names, drop, bar, msg);
}

async function deployments(site, box, refresh) {
  const [d, env, logs] = await Promise.all([
    get(`/api/sites/${encodeURIComponent(site)}/deployments`), envPanel(site), logsPanel(site)]);
  const msg = status();
  const rollback = async (id) => {
    try {
      await post(`/api/sites/${encodeURIComponent(site)}/rollback`, { deployment: id });
      await refresh(site);
    } catch (err) { msg.fail(err); }
  };
  box.replaceChildren(
    h("h3", { text: `Deployments of ${site}` }),
    table([
      ["#", (x) => String(x.id), "num"],
      ["Created", (x) => fmtTime(x.created_at)],
      ["Files", (x) => fmtNum(x.files), "num"],
      ["Size", (x) => fmtBytes(x.bytes), "num"],
      ["New bytes", (x) => fmtBytes(x.new_bytes), "num"],
      ["From", (x) => x.source, "hide-narrow"],
      ["", (x) => x.current ? h("span", { class: "pill ok", text: "live" })
        : h("button", { type: "button", class: "small", "data-rollback": x.id, text: "Roll back to this", onclick: () => rollback(x.id) })],
    ], d.deployments),
    msg, env, logs);
}

export async function render(root, { me }) {
  const list = h("div");
  const detail = h("div", { id: "deployments" });
  const msg = status();
  let open = null;
  async function refresh(show) {
    const { sites } = await get("/api/sites");
    list.replaceChildren(table([
      ["Site", (s) => h("a", { href: s.url, text: s.name })],
      ["Deployment", (s) => "#" + s.deployment, "num"],
      ["Files", (s) => fmtNum(s.files), "num"],
      ["Size", (s) => fmtBytes(s.bytes), "num"],
      ["Updated", (s) => fmtTime(s.updated_at), "hide-narrow"],
      ["", (s) => h("span", { class: "row" },
        h("button", { type: "button", class: "small", text: "Deployments", "data-deployments": s.name, "aria-expanded": String(open === s.name), onclick: () => toggle(s.name) }),
        // root and 404 are replaced by a deploy, never deleted (the server refuses).
        PERMANENT.has(s.name) ? null : h("button", { type: "button", class: "small danger", text: "Delete", "data-delete": s.name, onclick: () => remove(s.name) }))],
    ], sites, "No sites yet: deploy one above."));
    if (show) open = show;
    if (open) await deployments(open, detail, refresh);
    return sites;
  }
  async function toggle(name) {
    open = open === name ? null : name;
    if (!open) return detail.replaceChildren();
    await refresh();
  }
  async function remove(name) {
    if (!(await confirmTyped(`Delete ${name}, every deployment of it and the files nothing else uses? This can't be undone.`, name, "Delete site"))) return;
    try {
      await del(`/api/sites/${encodeURIComponent(name)}`);
      msg.ok(`${name} deleted.`);
      if (open === name) { open = null; detail.replaceChildren(); }
      await refresh();
    } catch (err) { msg.fail(err); }
  }
  const sites = await refresh();
  put(root,
    h("h1", { text: "Sites" }),
    me.owner ? null : h("p", { class: "hint", text: `Signed in with the scope ${me.scope}: only those sites are shown.` }),
    deployForm(sites, refresh),
    section("Sites", "site-list", list, msg, detail));
}
