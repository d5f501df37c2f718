// /docs (Swagger UI) and /redoc, from the package's own copies: nothing from another host.
//
// The schema is fetched here with the key the dashboard keeps in this tab's sessionStorage
// (none needed with --public-docs), then handed to the viewer; Swagger UI's "Try it out"
// sends the same key unless the Authorize dialog sets another.
"use strict";

(function () {
  const key = sessionStorage.getItem("keeldb.key");

  function fail(message) {
    const box = document.getElementById("apidocs-error");
    box.textContent = message;
    box.hidden = false;
  }

  async function loadSchema() {
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = "Bearer " + key;
    const resp = await fetch("/openapi.json", { headers, cache: "no-store", credentials: "omit" });
    if (resp.status === 401) {
      throw new Error("This server needs an API key for its schema: sign in on the dashboard (/ui) in this tab first, then come back.");
    }
    if (!resp.ok) throw new Error("Could not load /openapi.json: HTTP " + resp.status);
    return resp.json();
  }

  function showSwagger(spec) {
    window.ui = window.SwaggerUIBundle({
      spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      requestInterceptor(req) {
        if (key && !req.headers.Authorization) req.headers.Authorization = "Bearer " + key;
        return req;
      },
    });
  }

  function showRedoc(spec) {
    window.Redoc.init(spec, { disableSearch: true, hideDownloadButton: false }, document.getElementById("redoc"));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const viewer = document.body.dataset.viewer;
    loadSchema()
      .then((spec) => (viewer === "redoc" ? showRedoc(spec) : showSwagger(spec)))
      .catch((err) => fail(err.message));
  });
})();
