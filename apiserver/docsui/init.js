// Swagger UI over the apiserver's own document. Paths are relative to /docs, so the page
// also works behind a proxy that mounts the API under a prefix. validatorUrl is off: the
// default would send the document to an outside validator and show its badge.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    docExpansion: "list",
    persistAuthorization: true,
  });
};
