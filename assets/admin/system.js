import { h } from "./ui.js";
export async function render(root) { root.append(h("p", { text: "Coming soon." })); }
