// The admin page: users and lanes.
import { get, post, del, attempt } from "./api.js";
import { h, mount, formatTime } from "./dom.js";

export async function renderAdmin(el) {
  const users = h("div");
  const lanes = h("div");
  async function load() {
    const [u, l] = await Promise.all([get("api/users").catch(() => null), get("api/lanes")]);
    mount(users, u ? h("table.data-table", {}, h("thead", {}, h("tr", {}, ["User", "Role", "Created", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, u.map((x) => h("tr", { testid: `user-row-${x.username}` }, h("td", {}, x.username), h("td", {}, x.role), h("td", {}, formatTime(x.created_at)),
        h("td", {}, h("button.link.small.danger", { onclick: async () => { if (await attempt(() => del(`api/users/${encodeURIComponent(x.username)}`))) load(); } }, "remove"))))))
      : h("p.muted", {}, "Only admins see the users."));
    mount(lanes, h("table.data-table", {}, h("thead", {}, h("tr", {}, ["Lane", "Kind", "CPUs", "GPUs", "RAM (GB)", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, l.map((x) => h("tr", {}, h("td", {}, x.title || x.name), h("td", {}, x.kind), h("td", {}, String(x.cpu ?? "")),
        h("td", {}, String(x.gpus ?? "")), h("td", {}, String(x.ram_gb ?? "")),
        h("td", {}, h("button.link.small.danger", { onclick: async () => { if (await attempt(() => del(`api/lanes/${encodeURIComponent(x.name)}`))) load(); } }, "remove")))))));
  }
  const name = h("input", { placeholder: "username", testid: "new-user-name" });
  const password = h("input", { type: "password", placeholder: "password", testid: "new-user-password" });
  const role = h("select", { testid: "new-user-role" }, h("option", { value: "user" }, "user"), h("option", { value: "admin" }, "admin"));
  const laneName = h("input.narrow", { placeholder: "lane name" });
  const cpu = h("input.narrow", { type: "number", placeholder: "CPUs", value: "2" });
  const ram = h("input.narrow", { type: "number", placeholder: "RAM GB", value: "8" });
  const gpus = h("input.narrow", { type: "number", placeholder: "GPUs", value: "0" });
  mount(el,
    h("div.page-head", {}, h("h2", {}, "Admin")),
    h("section.panel", {}, h("h3", {}, "Users"), users,
      h("form.inline-form", { onsubmit: async (e) => {
        e.preventDefault();
        if (await attempt(() => post("api/users", { username: name.value, password: password.value, role: role.value }))) { name.value = password.value = ""; load(); }
      } }, name, password, role, h("button.primary", { type: "submit" }, "Add user"))),
    h("section.panel", {}, h("h3", {}, "Lanes"), lanes,
      h("form.inline-form", { onsubmit: async (e) => {
        e.preventDefault();
        const body = { name: laneName.value, cpu: Number(cpu.value), ram_gb: Number(ram.value), gpus: Number(gpus.value) };
        if (await attempt(() => post("api/lanes/local", body))) load();
      } }, laneName, h("label.small", {}, "CPUs ", cpu), h("label.small", {}, "RAM GB ", ram), h("label.small", {}, "GPUs ", gpus),
      h("button.primary", { type: "submit" }, "Add local lane"))));
  await load();
  return null;
}
