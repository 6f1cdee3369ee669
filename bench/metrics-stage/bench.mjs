// Entry for bench/run.mjs: the metrics stage micro-benchmark lives in ../metrics-stage.mjs.
import '../metrics-stage.mjs';
