import { render } from 'preact';

render(<p>Ferry console</p>, document.getElementById('app')!);
