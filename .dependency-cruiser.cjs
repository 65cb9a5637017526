// Import cycles, type-only imports included (tsPreCompilationDeps), fail the lint of every
// package (each package's `lint` script runs depcruise on its own src and test). eslint's
// import-x/no-cycle skips `import type`, which is why this is dependency-cruiser and not a rule
// in eslint.config.js.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-import-cycle",
      severity: "error",
      comment: "Import loops hide the layering; move the shared piece down or invert the arrow (issue 11).",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)(dist|node_modules)/" },
  },
};
