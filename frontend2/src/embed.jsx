import "./styles.css";
import { mountWidgets, onReady } from "./mount";
import { EMBEDDABLE } from "./widgets/embeddable";

// Admin pages load this entry: the embeddable widgets without the dashboard.
onReady(() => mountWidgets(EMBEDDABLE));
