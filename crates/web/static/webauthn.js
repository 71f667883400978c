// carepost staff pages: registering and using WebAuthn security keys.
// Served from /static/webauthn.js under a Content-Security-Policy that allows this origin's
// scripts and nothing inline. The page names its endpoints and CSRF token in data-
// attributes of #webauthn; the browser's answer goes back as an ordinary form post.
"use strict";

(function () {
  const box = document.getElementById("webauthn");
  const button = document.getElementById("webauthn-go");
  const status = document.getElementById("webauthn-status");
  if (!box || !button || !window.PublicKeyCredential) {
    if (status) {
      status.textContent = "This browser cannot use security keys.";
      status.hidden = false;
    }
    return;
  }

  function toBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function toText(buffer) {
    if (!buffer) return null;
    let raw = "";
    new Uint8Array(buffer).forEach((b) => { raw += String.fromCharCode(b); });
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function form(fields) {
    const body = new URLSearchParams();
    body.set("csrf", box.dataset.csrf);
    Object.keys(fields).forEach((k) => body.set(k, fields[k]));
    return { method: "POST", credentials: "same-origin", headers: { "content-type": "application/x-www-form-urlencoded" }, body };
  }

  function show(text) {
    status.textContent = text;
    status.hidden = false;
  }

  async function answer(response) {
    const data = await response.json().catch(() => ({}));
    if (data.next && (response.ok || data.next === "/staff/signin")) {
      window.location.assign(data.next);
      return;
    }
    show(data.error || "That did not work. Try again.");
  }

  async function register() {
    const name = document.getElementById("webauthn-name");
    const start = await fetch(box.dataset.start, form({ name: name ? name.value : "" }));
    if (!start.ok) return answer(start);
    const options = (await start.json()).publicKey;
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    (options.excludeCredentials || []).forEach((c) => { c.id = toBytes(c.id); });
    const cred = await navigator.credentials.create({ publicKey: options });
    const credential = {
      id: cred.id,
      rawId: toText(cred.rawId),
      type: cred.type,
      extensions: cred.getClientExtensionResults(),
      response: {
        attestationObject: toText(cred.response.attestationObject),
        clientDataJSON: toText(cred.response.clientDataJSON),
        transports: cred.response.getTransports ? cred.response.getTransports() : [],
      },
    };
    return answer(await fetch(box.dataset.finish, form({ credential: JSON.stringify(credential) })));
  }

  async function authenticate() {
    const start = await fetch(box.dataset.start, form({}));
    if (!start.ok) return answer(start);
    const options = (await start.json()).publicKey;
    options.challenge = toBytes(options.challenge);
    (options.allowCredentials || []).forEach((c) => { c.id = toBytes(c.id); });
    const cred = await navigator.credentials.get({ publicKey: options });
    const credential = {
      id: cred.id,
      rawId: toText(cred.rawId),
      type: cred.type,
      extensions: cred.getClientExtensionResults(),
      response: {
        authenticatorData: toText(cred.response.authenticatorData),
        clientDataJSON: toText(cred.response.clientDataJSON),
        signature: toText(cred.response.signature),
        userHandle: toText(cred.response.userHandle),
      },
    };
    return answer(await fetch(box.dataset.finish, form({ credential: JSON.stringify(credential) })));
  }

  button.addEventListener("click", () => {
    status.hidden = true;
    const run = box.dataset.mode === "register" ? register : authenticate;
    run().catch((e) => show("The security key did not answer (" + e.name + "). Try again."));
  });
})();
