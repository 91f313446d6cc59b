// Starts Swagger UI on /api/v1/docs with the API schema of this server.
// Loaded after /api/v1/docs/swagger-ui-bundle.js (a classic script defining SwaggerUIBundle).
const root = document.getElementById('swagger-ui');
window.ui = SwaggerUIBundle({
  url: root.dataset.openapi,
  dom_id: '#swagger-ui',
  deepLinking: true,
  layout: 'BaseLayout',
  presets: [SwaggerUIBundle.presets.apis],
  validatorUrl: null,           // no schema sent to swagger.io
  showExtensions: true,
  displayRequestDuration: true,
});
