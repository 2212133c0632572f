import "./styles.css";
import { mountWidgets, onReady } from "./mount";
import { EMBEDDABLE } from "./widgets/embeddable";
import { MLOpsDashboard } from "./widgets/ML/MLOpsDashboard";

onReady(() => mountWidgets({ ...EMBEDDABLE, dashboard: ["Dashboard", () => <MLOpsDashboard />] }));
